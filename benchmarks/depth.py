"""Deep graphs: how the trained models of a results folder fare by sweep depth, and what a training epoch
of each pLSTM backend costs.

    python -m benchmarks.depth results/lrgb-cpu                    # both parts, Peptides-func
    python -m benchmarks.depth results/lrgb-cpu --skip-timing      # the depth bins only

**By depth.** Every finished run of the folder (``runs/<dataset>/<model>/<seed>``) is loaded with its
best-validation weights from ``checkpoint.pt`` and predicts the validation graphs its run evaluated (the
same seeded subset). The graphs are cut into bins by their sweep depth, the number of levels of the
forward sweep of the DAG a pLSTM runs over (the orientation by atom index), at the quartiles of the
validation graphs; per bin the table gives the metric (AP for Peptides-func) and the mean loss
(binary cross-entropy for binary tasks, squared error for regression; none for multiclass tasks, whose
predictions are classes). Only validation graphs are used: the test split is reported once, by the suite.

**Time per epoch.** One training step (forward, backward, AdamW step) of the folder's pLSTM model with
each ``plstm_dag`` backend of the registry that runs on CPU (built with that backend), and of every
baseline, on ``--steps`` batches of the run's training graphs after one warm-up batch, scaled to one epoch
of the whole training split; one thread, structures precomputed as the training CLI does.

Writes ``depth.md`` and ``depth.json`` into the folder and prints the markdown.
"""

import argparse
import itertools
import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch_geometric.loader import DataLoader

from plstm_geometric.functional import dag
from plstm_geometric.transforms import PreparePLSTM

from . import backends
from . import results_folder as folder_runs
from .harness import measure, torch_threads
from .results_folder import finished_runs, run_args

#: The backends timed (those that need no GPU: the benchmark runs on CPU).
BACKENDS = backends.timed(dag, torch.device("cpu"))


def sweep_depths(dataset, index: torch.Tensor) -> torch.Tensor:
    """Levels of the forward sweep of each graph ``dataset[index]`` (longest path + 1; 1 without edges)."""
    prepared = PreparePLSTM(modes=("P",), directions=("forward",)).prepare_many([dataset[int(i)] for i in index])
    return torch.tensor([int(g.dag_node_level_forward.max()) + 1 if g.num_nodes else 0 for g in prepared])


def depth_bins(depth: torch.Tensor) -> list[tuple[int, int]]:
    """Inclusive depth ranges at the quartiles of ``depth`` (fewer when quartiles coincide)."""
    cuts = torch.quantile(depth.double(), torch.tensor([0.25, 0.5, 0.75], dtype=torch.double)).floor().long()
    edges = [int(depth.min()) - 1, *sorted(set(cuts.tolist())), int(depth.max())]
    return [(low + 1, high) for low, high in zip(edges[:-1], edges[1:]) if high > low]


def loss(task: str, truth: torch.Tensor, prediction: torch.Tensor) -> float | None:
    """Mean loss over the labelled entries: BCE of logits (binary) or squared error (regression)."""
    labelled = ~torch.isnan(truth)
    if task == "binary classification":
        return F.binary_cross_entropy_with_logits(prediction[labelled], truth[labelled].float()).item()
    if task == "regression":
        return F.mse_loss(prediction[labelled], truth[labelled].float()).item()
    return None


def by_depth(folder: Path, runs, root):
    rows, bins, depth, reference = [], None, None, None
    for run_dir, summary in runs:
        args = run_args(summary["config"], root)
        data = folder_runs.prepare(args)
        index = data.split["valid"]
        if depth is None:
            reference, depth = index, sweep_depths(data.dataset, index)
            bins = depth_bins(depth)
        elif not torch.equal(index, reference):
            raise SystemExit(f"{run_dir}: evaluated other validation graphs than the first run; compare like with like")
        model = folder_runs.best_weights(folder_runs.run_model(args, data), run_dir)
        y_true, y_pred = folder_runs.predict(model, data, index, args.batch_size)
        row = {"run": str(run_dir.relative_to(folder)), "model": args.model, "metric": data.metric, "bins": []}
        for low, high in bins:
            mask = (depth >= low) & (depth <= high)
            truth, prediction = y_true[mask], y_pred[mask]
            value = folder_runs.evaluate(data.dataset, truth, prediction)
            mean_loss = loss(data.task, truth, prediction)
            row["bins"].append({"depth": [low, high], "graphs": int(mask.sum()), data.metric: value, "loss": mean_loss})
        row["all"] = {data.metric: folder_runs.evaluate(data.dataset, y_true, y_pred)}
        rows.append(row)
    return rows


def epoch_time(model, graphs, batch_size, steps, epoch_graphs, loss_fn) -> float:
    """Seconds of a training epoch over ``epoch_graphs`` graphs, from up to ``steps`` timed batches after one
    warm-up batch (each call of the timed step trains on the next batch)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batches = list(DataLoader(graphs, batch_size=batch_size, shuffle=False))[: steps + 1]
    upcoming = itertools.cycle(batches)  # a single batch is the warm-up batch and the timed one
    trained = []
    model.train()

    def step():
        batch = next(upcoming)
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(batch), batch.y).backward()
        optimizer.step()
        trained.append(batch.num_graphs)

    measured = measure(step, torch.device("cpu"), repeats=max(len(batches) - 1, 1), warmup=1)
    return measured.total / sum(trained[1:]) * epoch_graphs


def timing(runs, root, steps, plstm_backends=BACKENDS):
    rows = []
    for _, summary in runs:
        args = run_args(summary["config"], root)
        data = folder_runs.prepare(args)
        epoch_graphs = folder_runs.train_split_size(args, data.dataset)
        loss_fn = folder_runs.loss(data)
        graphs = data.graphs[data.split["train"][: steps * args.batch_size + args.batch_size]]
        for backend in plstm_backends if args.model == "plstm" else (None,):
            model = folder_runs.run_model(args, data, backend)
            try:
                seconds = epoch_time(model, graphs, args.batch_size, steps, epoch_graphs, loss_fn)
                status = "ok"
            except (RuntimeError, MemoryError) as error:  # e.g. a dense form out of memory
                seconds, status = math.nan, f"error: {type(error).__name__}: {str(error).splitlines()[0][:120]}"
            rows.append(
                {
                    "model": args.model,
                    "backend": backend or "",
                    "params": sum(p.numel() for p in model.parameters()),
                    "epoch_s": seconds,
                    "epoch_graphs": epoch_graphs,
                    "status": status,
                }
            )
            print(f"  {args.model} {backend or ''}: {seconds:.1f} s / epoch ({status})", flush=True)
    return rows


def markdown(depth_rows, timing_rows, steps) -> str:
    lines = []
    if depth_rows:
        metric = depth_rows[0]["metric"]
        bins = [b["depth"] for b in depth_rows[0]["bins"]]
        counts = [b["graphs"] for b in depth_rows[0]["bins"]]
        head = [f"depth {low}-{high} ({n} graphs)" for (low, high), n in zip(bins, counts)]
        lines += [
            f"Validation {metric} / mean loss by sweep depth (levels of the forward sweep), best-validation weights:",
            "",
            "| model | " + " | ".join(head) + f" | all ({metric}) |",
            "|---|" + "---|" * (len(head) + 1),
        ]
        for row in depth_rows:
            cells = [f"{b[metric]:.4f}" + ("" if b["loss"] is None else f" / {b['loss']:.4f}") for b in row["bins"]]
            lines.append(f"| {row['model']} | " + " | ".join(cells) + f" | {row['all'][metric]:.4f} |")
        lines.append("")
    if timing_rows:
        # ratios to GCN when the folder has a GCN run, else to the first baseline
        reference = next((r for r in timing_rows if r["model"] == "gcn"), None)
        reference = reference or next((r for r in timing_rows if r["model"] != "plstm"), None)
        gcn = math.nan if reference is None else reference["epoch_s"]
        lines += [
            f"Time per training epoch ({timing_rows[0]['epoch_graphs']:,} graphs; from {steps} timed batches, "
            "one thread):",
            "",
            f"| model | backend | params | s / epoch | / {reference['model'] if reference else 'baseline'} |",
            "|---|---|---|---|---|",
        ]
        for r in timing_rows:
            seconds = "–" if math.isnan(r["epoch_s"]) else f"{r['epoch_s']:.0f}"
            ratio = "–" if math.isnan(r["epoch_s"] / gcn) else f"{r['epoch_s'] / gcn:.1f}x"
            extra = "" if r["status"] == "ok" else f" ({r['status']})"
            lines.append(f"| {r['model']} | {r['backend'] or '–'} | {r['params']:,} | {seconds}{extra} | {ratio} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.depth", description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a results folder of benchmarks.suite, e.g. results/lrgb-cpu")
    parser.add_argument("--root", help="data root (default: each run's own)")
    parser.add_argument("--run", help="run folder name to compare, e.g. seed0 (default: the first all models have)")
    parser.add_argument("--steps", type=int, default=8, help="timed training batches per model and backend")
    parser.add_argument(
        "--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS), help="pLSTM backends to time"
    )
    parser.add_argument("--skip-timing", action="store_true")
    parser.add_argument("--skip-depth", action="store_true")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps: expected a positive int, got {args.steps}")
    runs = finished_runs(args.folder, args.run)
    depth_rows = [] if args.skip_depth else by_depth(args.folder, runs, args.root)
    with torch_threads(1):
        timing_rows = [] if args.skip_timing else timing(runs, args.root, args.steps, args.backends)
    text = markdown(depth_rows, timing_rows, args.steps)
    (args.folder / "depth.json").write_text(json.dumps({"by_depth": depth_rows, "timing": timing_rows}, indent=1))
    (args.folder / "depth.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
