r"""How far a trained pLSTM looks: the influence of a node's input on another node's output, by hop distance.

    python -m benchmarks.influence results/lrgb-cpu              # every pLSTM run of the folder
    python -m benchmarks.influence results/lrgb-cpu --graphs 64 --targets 8

For a graph-level model with node embeddings :math:`\mathbf{h}^0_u` (the output of its node encoder) and
final node states :math:`\mathbf{h}_v` (before pooling), the influence of :math:`u` on :math:`v` is the
Frobenius norm of the Jacobian block :math:`\|\partial \mathbf{h}_v / \partial \mathbf{h}^0_u\|_F`. It is
estimated without forming the Jacobian: for a random Gaussian vector :math:`\mathbf{r}`,
:math:`\mathbb{E}\|\mathbf{r}^\top \partial \mathbf{h}_v / \partial \mathbf{h}^0_u\|^2 = \|\cdot\|_F^2`, and
one backward pass of :math:`\sum_G \mathbf{r}_G^\top \mathbf{h}_{v_G}` gives it for every source node
:math:`u` of every graph :math:`G` of a batch at once (graphs of a batch are independent). Influences are
averaged over all (target, source) pairs in bins of the hop distance between them (shortest path in the
undirected graph) and reported relative to the influence of a node on itself (distance 0).

For every finished pLSTM run of a results folder, the table gives the influence profile of its model at
initialisation (built with the run's seed, before any step) and after training (its best-validation
checkpoint), on the first ``--graphs`` validation graphs the run evaluated. Writes ``influence.md`` and
``influence.json`` into the folder.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import shortest_path
from torch_geometric.data import Batch

from .harness import torch_threads

BINS = ((0, 0), (1, 5), (6, 10), (11, 20), (21, 50), (51, 100), (101, 10**9))


def hop_distances(edge_index: torch.Tensor, num_nodes: int, targets: np.ndarray) -> np.ndarray:
    """``[len(targets), num_nodes]`` undirected hop distances (``inf`` between disconnected nodes)."""
    row, col = edge_index.cpu().numpy()
    adjacency = coo_matrix((np.ones(len(row)), (row, col)), shape=(num_nodes, num_nodes)).tocsr()
    return shortest_path(adjacency, directed=False, unweighted=True, indices=targets)


def influence_by_distance(
    model: torch.nn.Module,
    graphs: list,
    targets_per_graph: int = 8,
    projections: int = 2,
    seed: int = 0,
    bins=BINS,
) -> dict:
    """Mean influence per hop-distance bin of ``model`` (with ``node_encoder`` and ``norm`` submodules, as
    :class:`~plstm_geometric.models.PLSTMGraphModel`) on ``graphs``; ``{"bins": [...], "influence": [...],
    "pairs": [...]}`` with influences relative to distance 0."""
    generator = torch.Generator().manual_seed(seed)
    batch = Batch.from_data_list(graphs)
    captured = {}
    hooks = [
        model.node_encoder.register_forward_hook(lambda m, i, out: captured.__setitem__("input", out)),
        model.norm.register_forward_hook(lambda m, i, out: captured.__setitem__("output", out)),
    ]
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            model(batch)
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    inputs, outputs = captured["input"], captured["output"]
    ptr = batch.ptr.tolist()
    sums, counts = np.zeros(len(bins)), np.zeros(len(bins))
    for _ in range(targets_per_graph):
        # one target node per graph, drawn at random
        targets = np.array(
            [start + int(torch.randint(end - start, (1,), generator=generator)) for start, end in zip(ptr, ptr[1:])]
        )
        squared = torch.zeros(inputs.size(0), dtype=torch.float64)
        for _ in range(projections):
            r = torch.randn(len(targets), outputs.size(1), generator=generator, dtype=outputs.dtype)
            (grad,) = torch.autograd.grad((r * outputs[targets]).sum(), inputs, retain_graph=True)
            squared += grad.double().pow(2).sum(dim=1)
        norm = (squared / projections).sqrt().numpy()
        distance = hop_distances(batch.edge_index, batch.num_nodes, targets)
        graph_of = batch.batch.numpy()
        for row, target in enumerate(targets):
            same_graph = graph_of == graph_of[target]
            for b, (low, high) in enumerate(bins):
                mask = same_graph & (distance[row] >= low) & (distance[row] <= high)
                sums[b] += norm[mask].sum()
                counts[b] += mask.sum()
    means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return {
        "bins": [list(b) for b in bins],
        "influence": (means / means[0]).tolist(),
        "pairs": counts.astype(int).tolist(),
    }


def bin_label(low: int, high: int) -> str:
    return str(low) if low == high else (f"{low}+" if high >= 10**9 else f"{low}-{high}")


def markdown(rows: list[dict]) -> str:
    labels = [bin_label(*b) for b in rows[0]["profile"]["bins"][1:]]
    lines = [
        "| run | model state | " + " | ".join(f"{label} hops" for label in labels) + " |",
        "|---|---|" + "---|" * len(labels),
    ]
    for row in rows:
        values = ["" if np.isnan(v) else f"{v:.2g}" for v in row["profile"]["influence"][1:]]
        lines.append(f"| {row['run']} | {row['state']} | " + " | ".join(values) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    from . import results_folder as folder_runs

    parser = argparse.ArgumentParser(prog="python -m benchmarks.influence", description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path, help="a results folder (runs/<dataset>/<model>/<run>)")
    parser.add_argument("--root", default=None, help="dataset root (default: the one each run used)")
    parser.add_argument("--graphs", type=int, default=64, help="validation graphs measured (default 64)")
    parser.add_argument("--targets", type=int, default=8, help="target nodes drawn per graph (default 8)")
    parser.add_argument("--projections", type=int, default=2, help="random projections per target (default 2)")
    args = parser.parse_args(argv)
    with torch_threads(1):
        rows = []
        for run_dir, summary in folder_runs.finished_runs(args.folder):
            run = folder_runs.run_args(summary["config"], args.root)
            if run.model != "plstm":
                continue
            data = folder_runs.prepare(run)
            graphs = [data.graphs[int(i)] for i in data.split["valid"][: args.graphs]]
            model = folder_runs.run_model(run, data)  # initialised from the run's seed
            for state in ("initialisation", "trained"):
                if state == "trained":
                    folder_runs.best_weights(model, run_dir)
                profile = influence_by_distance(model, graphs, args.targets, args.projections)
                rows.append({"run": str(run_dir.relative_to(args.folder)), "state": state, "profile": profile})
    if not rows:
        raise SystemExit(f"{args.folder}: no finished pLSTM run with a checkpoint")
    text = markdown(rows)
    (args.folder / "influence.md").write_text(text)
    (args.folder / "influence.json").write_text(json.dumps(rows, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
