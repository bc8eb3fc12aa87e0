"""A long chain through plstm_dag: the backends ``backend="auto"`` chooses from for it (chain contraction
by the graph rule; on CPU the compiled level sweep) against the reference level sweep, which takes one
step per level.

    python -m benchmarks.chain [--nodes 100000] [--device cuda] [--backends ...]

Forward+backward, float32, 1 head, K = V = 8 by default. Also times building the plan (node levels,
line graph, schedule) and the chain schedule, since one level per node used to cost there too.
``--backends`` takes any backend of the registry; the dense ones are not meant for a graph of this size.
"""

import argparse
import time

import torch

from plstm_geometric.functional import dag
from plstm_geometric.graph import build_plan, line_graph

from . import backends
from .harness import measure


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--nodes", type=int, default=100_000)
    parser.add_argument("--heads", type=int, default=1)
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--backends",
        nargs="+",
        choices=backends.DAG_BACKENDS,
        default=None,
        help="backends to time (default: the reference and the one 'auto' picks for the chain)",
    )
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    device = torch.device(args.device)
    num_nodes, heads, channels = args.nodes, args.heads, args.channels
    edge_index = torch.stack([torch.arange(num_nodes - 1), torch.arange(1, num_nodes)]).to(device)
    start = time.perf_counter()
    line_edge_index = line_graph(edge_index, num_nodes)
    plan = build_plan(edge_index, line_edge_index, num_nodes)
    plan_seconds = time.perf_counter() - start
    start = time.perf_counter()
    contracted_levels = plan.chains.num_levels
    chain_seconds = time.perf_counter() - start
    picked = dag.auto_backend(plan, heads, channels, channels, torch.float32, device)
    print(
        f"chain of {num_nodes} nodes: plan {plan_seconds:.2f} s ({plan.num_levels} levels), "
        f"chain schedule {chain_seconds:.2f} s ({contracted_levels} contracted levels); "
        f"backend='auto' runs {picked!r} (the graph rule alone: {dag.choose_backend(plan)!r}); device {device}"
    )

    def leaf(*shape):
        return torch.rand(*shape, device=device).requires_grad_()

    inputs = dict(
        query=leaf(num_nodes, heads, channels),
        key=leaf(num_nodes, heads, channels),
        value=leaf(num_nodes, heads, channels),
        source=leaf(num_nodes - 1, heads),
        transition=leaf(num_nodes - 2, heads),
        mark=leaf(num_nodes - 1, heads),
        direct=leaf(num_nodes, heads),
    )
    reference = backends.reference(dag)
    timed = args.backends or list(dict.fromkeys([reference, dag.choose_backend(plan), picked]))
    times = {}
    for backend in timed:

        def step(backend=backend):
            out = dag.plstm_dag(
                **inputs, edge_index=edge_index, line_edge_index=line_edge_index, plan=plan, backend=backend
            )
            out.sum().backward()

        times[backend] = measure(step, device, repeats=args.repeats, warmup=1).median
    print(f"| backend | fwd+bwd s | speed-up over {reference} |")
    print("|---|---|---|")
    for backend, seconds in times.items():
        ratio = f"{times[reference] / seconds:.1f}x" if reference in times else "–"
        print(f"| {backend} | {seconds:.3f} | {ratio} |")
    return times


if __name__ == "__main__":
    main()
