"""A long chain through plstm_dag: one step per level (levels) against chain contraction (chains).

    python -m benchmarks.chain [--nodes 100000] [--device cuda]

Forward+backward, float32, 1 head, K = V = 8 by default. Also times building the plan (node levels,
line graph, schedule), since one level per node used to cost there too.
"""

import argparse
import time

import torch

from plstm_geometric.functional import plstm_dag
from plstm_geometric.graph import build_plan, line_graph

from .timing import measure


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--nodes", type=int, default=100_000)
    parser.add_argument("--heads", type=int, default=1)
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
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
    print(
        f"chain of {num_nodes} nodes: plan {plan_seconds:.2f} s ({plan.num_levels} levels), "
        f"chain schedule {chain_seconds:.2f} s ({contracted_levels} contracted levels); device {device}"
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
    times = {}
    for backend in ("levels", "chains"):

        def step(backend=backend):
            plstm_dag(
                **inputs, edge_index=edge_index, line_edge_index=line_edge_index, plan=plan, backend=backend
            ).sum().backward()

        times[backend] = measure(step, device, repeats=args.repeats, warmup=1)
    print("| backend | steps | fwd+bwd s |")
    print("|---|---|---|")
    print(f"| levels | {plan.num_levels} | {times['levels']:.3f} |")
    print(f"| chains | {contracted_levels} | {times['chains']:.3f} |")
    print(f"levels / chains = {times['levels'] / times['chains']:.1f}x")
    return times


if __name__ == "__main__":
    main()
