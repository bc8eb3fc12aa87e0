r"""torch.compile against eager for PLSTMGraphModel: graph breaks, time of the first (compiling) call, and
forward + backward time per training step on batches of NCI molecules, printed as a markdown table.

    python -m tools.compile_timing                          # inductor, 64 molecules, 2 blocks, 1 thread
    python -m tools.compile_timing --backend aot_eager --repeats 10

Both sides run the same step: the structures of the batch (``model.structures``, integer work with host
syncs, never compiled), the model's forward pass and the backward pass. The compiled model is
``torch.compile(model, dynamic=True)`` called as ``compiled(batch, model.structures(batch))``; it sees
``--batches`` batches of other sizes first ("graphs compiled" counts the graphs Dynamo compiled for them,
forward graphs only), and a recompilation after that is an error. Times are
the median over ``--repeats`` rounds, each timing every batch once per side, eager and compiled in
alternation so that a busy machine slows both alike. Needs rdkit and ogb (the NCI molecules).
"""

import argparse
import statistics
import time

import torch
import torch._dynamo as dynamo
from torch._dynamo.utils import counters
from torch_geometric.data import Batch

from plstm_geometric.models import PLSTMGraphModel
from plstm_geometric.testing import nci_batch
from plstm_geometric.transforms import PreparePLSTM


def step(model, batch, structures=None) -> float:
    """Seconds of one forward + backward pass (``structures=None``: the model computes them itself)."""
    model.zero_grad(set_to_none=True)
    start = time.perf_counter()
    out = model(batch) if structures is None else model(batch, structures(batch))
    out.square().sum().backward()
    return time.perf_counter() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--molecules", type=int, default=64, help="molecules per batch")
    parser.add_argument("--batches", type=int, default=4, help="batches (of different sizes)")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2, help="PLSTMBlocks")
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--backend", default="inductor", help="torch.compile backend")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    graphs = PreparePLSTM().prepare_many(nci_batch(args.molecules * args.batches).to_data_list())
    batches = [Batch.from_data_list(graphs[i : i + args.molecules]) for i in range(0, len(graphs), args.molecules)]
    model = PLSTMGraphModel(args.hidden, 1, num_layers=args.layers, heads=args.heads, pool_norm="none")
    compiled = torch.compile(model, dynamic=True, backend=args.backend)

    explanation = dynamo.explain(model)(batches[0], model.structures(batches[0]))
    dynamo.reset()
    counters.clear()
    first_call = step(compiled, batches[0], model.structures)
    for batch in batches[1:]:  # batches of other sizes: compiled again only if a guard fails
        step(compiled, batch, model.structures)
    compilations = counters["stats"]["unique_graphs"]
    for batch in batches:  # warm-up of both sides
        step(model, batch)
        step(compiled, batch, model.structures)
    eager, fast = [], []
    for _ in range(args.repeats):
        eager.append(sum(step(model, batch) for batch in batches) / len(batches))
        fast.append(sum(step(compiled, batch, model.structures) for batch in batches) / len(batches))
    assert counters["stats"]["unique_graphs"] == compilations, "recompiled after all batches were seen"

    eager_ms, compiled_ms = 1e3 * statistics.median(eager), 1e3 * statistics.median(fast)
    nodes = sum(batch.num_nodes for batch in batches) // len(batches)
    print(
        f"PLSTMGraphModel({args.hidden}, num_layers={args.layers}, heads={args.heads}), {args.molecules} NCI "
        f"molecules per batch (~{nodes} nodes), {args.threads} thread(s), torch {torch.__version__}\n"
    )
    print("| | graph breaks | graphs compiled | first call (s) | forward + backward (ms) | compiled / eager |")
    print("|---|---|---|---|---|---|")
    print(f"| eager | | | | {eager_ms:.1f} | |")
    print(
        f"| torch.compile ({args.backend}, dynamic=True) | {explanation.graph_break_count} | {compilations} | "
        f"{first_call:.1f} | {compiled_ms:.1f} | {compiled_ms / eager_ms:.2f} |"
    )


if __name__ == "__main__":
    main()
