"""Forward+backward of plstm_dag on a batch of real molecules against a per-edge loop and GINConv, and of
PLSTMConv against GINConv on a batch of 64 LRGB peptides (deep graphs: about 150 levels).

    python -m benchmarks.core [--device cuda] [--graphs 128] [--repeats 20] [--threads 1] [--skip-peptides]

Molecules: RDKit's NCI sample with OGB features, oriented by atom index; 4 heads, K = V = 24. The
per-edge loop is :func:`plstm_geometric.functional.plstm_dag_reference` (one edge at a time, like the
authors' reference implementation), timed once since it takes seconds. GINConv gets hidden size 96
(= 4 heads x 24) on the same (undirected) batch. Every backend of the registry is timed
(:mod:`benchmarks.backends`), except those that run Triton kernels off CUDA, where they would run in
Triton's interpreter.

Peptides: the first 64 graphs of Peptides-func (``benchmarks/gpu_data/peptides64.pt``, OGB features embedded
as in :mod:`benchmarks.layer`), one PLSTMConv (hidden 64, 4 heads, bond features, structure precomputed)
per backend, built with that backend and the same weights, next to GINConv of the same width in the same
run.
"""

import argparse

import torch
from torch_geometric.nn import GINConv

from plstm_geometric.functional import dag, plstm_dag, plstm_dag_reference
from plstm_geometric.functional.dag import auto_backend
from plstm_geometric.graph import build_plan, dagify, line_graph
from plstm_geometric.testing import nci_batch

from . import backends
from .data import load_graphs
from .harness import measure, measure_many, peak_memory, seeded, torch_threads

# A backend that takes seconds per step on the peptides (a deep sweep, or dense forms of large graphs) is
# timed once after one warm-up call instead of ``repeats`` times.
PEPTIDE_ROW_BUDGET_S = 5.0
# Untimed rounds before each peptide row: the first calls of a layer fill the compiled sweep's workspace
# with fresh pages (with huge pages, the first row timed after two rounds measured 10-25% slower than the
# same code timed later in the run), while training runs thousands of steps on warm buffers.
PEPTIDE_WARMUP_ROUNDS = 5


def molecule_workload(num_graphs: int, heads: int, channels: int, device: torch.device, mode: str = "P"):
    batch = nci_batch(num_graphs).to(device)
    edge_index = dagify(batch.edge_index, batch.num_nodes)
    line_edge_index = line_graph(edge_index, batch.num_nodes, mode)
    plan = build_plan(edge_index, line_edge_index, batch.num_nodes)
    generator = torch.Generator(device="cpu").manual_seed(0)

    def leaf(*shape, gate=False):
        tensor = torch.randn(*shape, generator=generator)
        tensor = torch.sigmoid(tensor) if gate else tensor
        return tensor.to(device).requires_grad_()

    num_nodes, num_edges, num_line = batch.num_nodes, edge_index.size(1), line_edge_index.size(1)
    inputs = dict(
        query=leaf(num_nodes, heads, channels),
        key=leaf(num_nodes, heads, channels),
        value=leaf(num_nodes, heads, channels),
        source=leaf(num_edges, heads, gate=True),
        transition=leaf(num_line, heads, gate=True),
        mark=leaf(num_edges, heads, gate=True),
        direct=leaf(num_nodes, heads, gate=True),
    )
    return batch, edge_index, line_edge_index, plan, inputs


def peptide_rows(device: torch.device, repeats: int):
    """(name, seconds, GINConv seconds of the same rounds) of PLSTMConv per backend on 64 peptides, forward
    + backward."""
    from torch_geometric.nn import GINConv as GIN

    from benchmarks.layer import HEADS, HIDDEN, embed, mlp
    from plstm_geometric.nn import PLSTMConv

    data = load_graphs("peptides64")
    generator = torch.Generator().manual_seed(0)
    x = embed(data.x, generator).to(device).requires_grad_()
    edge_attr = embed(data.edge_attr, generator).to(device)
    edge_index = data.edge_index.to(device)

    def conv(backend):
        # The same seed for every backend: the layers differ in their backend only.
        with seeded(0):
            return PLSTMConv(HIDDEN, HIDDEN, heads=HEADS, edge_dim=HIDDEN, backend=backend).to(device)

    timed = backends.timed(dag, device, include_auto=True)
    structure = conv(timed[0]).structure(edge_index, x.size(0))
    plan = structure.plan
    print(
        f"\n64 peptides: {x.size(0)} atoms, {plan.num_edges} DAG edges, {plan.num_levels} levels "
        f"({plan.chains.num_levels} after chain contraction); backend='auto' runs "
        f"{auto_backend(plan, HEADS, HIDDEN // HEADS, HIDDEN // HEADS, x.dtype, device)!r}"
    )
    gin = GIN(mlp()).to(device)

    def gin_step():
        gin.zero_grad(set_to_none=True)
        gin(x, edge_index).square().mean().backward()

    # Each backend is timed in rounds interleaved with GINConv, and divided by the GINConv times of its
    # own rounds: a slow backend (chains: seconds per call) leaves the allocator and caches in another
    # state, and a GINConv timed once after all of them was measured 2x slower than beside pLSTM.
    rows = []
    for backend in timed:
        layer = conv(backend)

        def step(layer=layer):
            layer.zero_grad(set_to_none=True)
            layer(x, edge_index, edge_attr, structure=structure).square().mean().backward()

        plstm_timing, gin_timing = measure_many(
            [step, gin_step], device, repeats, warmup=PEPTIDE_WARMUP_ROUNDS, budget_s=PEPTIDE_ROW_BUDGET_S
        )
        rows.append((f"PLSTMConv backend={backend}", plstm_timing.median, gin_timing.median))
    print("\n| layer (64 peptides) | fwd+bwd ms | GINConv(64) ms, same rounds | / GINConv |")
    print("|---|---|---|---|")
    for name, seconds, gin_seconds in rows:
        print(f"| {name} | {seconds * 1e3:.2f} | {gin_seconds * 1e3:.2f} | {seconds / gin_seconds:.2f}x |")
    return rows


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--graphs", type=int, default=128)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--channels", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--skip-loop", action="store_true", help="do not time the per-edge loop")
    tables = parser.add_mutually_exclusive_group()
    tables.add_argument("--skip-peptides", action="store_true", help="do not time the peptide batch")
    tables.add_argument(
        "--only-peptides",
        action="store_true",
        help="time the peptide batch alone (a fresh process per table: nothing timed before it)",
    )
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (torch.set_num_threads)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    with torch_threads(args.threads):
        return run(args)


def run(args):
    device = torch.device(args.device)
    if args.only_peptides:
        return peptide_rows(device, max(3, args.repeats // 4))
    batch, edge_index, line_edge_index, plan, inputs = molecule_workload(args.graphs, args.heads, args.channels, device)
    print(
        f"{args.graphs} molecules: {batch.num_nodes} atoms, {edge_index.size(1)} DAG edges, "
        f"{line_edge_index.size(1)} line edges, {plan.num_levels} levels; device {device}"
    )
    channels = inputs["query"].size(-1), inputs["value"].size(-1)
    print(f"backend='auto' runs {auto_backend(plan, args.heads, *channels, inputs['query'].dtype, device)!r}")
    for backend in backends.DAG_BACKENDS:
        reason = backends.skip_reason(dag, backend, device)
        if reason:
            print(
                f"backend={backend!r} not timed: {reason}"
                + (" (it runs Triton kernels)" if reason == "needs CUDA" else "")
            )
    rows = []
    for backend in backends.timed(dag, device, include_auto=True):

        def step(backend=backend):
            out = plstm_dag(
                **inputs, edge_index=edge_index, line_edge_index=line_edge_index, plan=plan, backend=backend
            )
            out.sum().backward()

        name = f"plstm_dag backend={backend}"
        rows.append((name, measure(step, device, args.repeats).median, peak_memory(step, device).added_mib))

    hidden = args.heads * args.channels
    gin = GINConv(
        torch.nn.Sequential(torch.nn.Linear(hidden, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, hidden))
    ).to(device)
    x = torch.randn(batch.num_nodes, hidden, device=device, requires_grad=True)

    def gin_step():
        gin(x, batch.edge_index).sum().backward()

    rows.append(
        (f"GINConv({hidden})", measure(gin_step, device, args.repeats).median, peak_memory(gin_step, device).added_mib)
    )

    if not args.skip_loop:

        def loop_step():
            plstm_dag_reference(**inputs, edge_index=edge_index, line_edge_index=line_edge_index).sum().backward()

        rows.append(("per-edge loop (reference)", measure(loop_step, device, repeats=1, warmup=0).median, float("nan")))
    print_table(rows, hidden, not args.skip_loop)
    if not args.skip_peptides:
        rows += [(name, seconds, float("nan")) for name, seconds, _ in peptide_rows(device, max(3, args.repeats // 4))]
    return rows


def print_table(rows, hidden: int, with_loop: bool) -> None:
    fastest_plstm = min(seconds for name, seconds, _ in rows if name.startswith("plstm_dag"))
    gin_seconds = next(seconds for name, seconds, _ in rows if name.startswith("GINConv"))
    print("\n| method | fwd+bwd ms | peak MiB | x fastest plstm_dag |")
    print("|---|---|---|---|")
    for name, seconds, memory in rows:
        print(f"| {name} | {seconds * 1e3:.2f} | {memory:.0f} | {seconds / fastest_plstm:.2f} |")
    print(f"\nfastest plstm_dag / GINConv({hidden}) = {fastest_plstm / gin_seconds:.2f}")
    if with_loop:
        print(f"per-edge loop / fastest plstm_dag = {rows[-1][1] / fastest_plstm:.0f}x")


if __name__ == "__main__":
    main()
