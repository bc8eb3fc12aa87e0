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
each ``plstm_dag`` backend, and of every baseline, on ``--steps`` batches of the run's training graphs,
scaled to one epoch of the whole training split; one thread, structures precomputed as the training
CLI does.

Writes ``depth.md`` and ``depth.json`` into the folder and prints the markdown.
"""

import argparse
import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch_geometric.loader import DataLoader

from plstm_geometric.nn import PLSTMConv
from plstm_geometric.train import graph
from plstm_geometric.train.processes import Processes
from plstm_geometric.train.runs import load_checkpoint
from plstm_geometric.transforms import PreparePLSTM

BACKENDS = ("levels", "chains", "mixed", "parallel")
# results.json configuration entries that rebuild a run's data and model
FLAGS = ("dataset", "model", "root", "fold", "seed", "hidden", "layers", "heads", "dropout", "pool", "batch_size")
LIMITS = ("max_train_graphs", "max_eval_graphs")


def run_args(config: dict, root: str | None):
    argv = []
    for key in FLAGS + LIMITS:
        value = root if key == "root" and root is not None else config.get(key)
        if value is not None:
            argv += [f"--{key.replace('_', '-')}", str(value)]
    return graph.parse_args(argv + ["--device", "cpu", "--threads", "1", "--no-progress"])


def finished_runs(folder: Path, name: str | None = None) -> list[tuple[Path, dict]]:
    """The finished runs (with a checkpoint) named ``name`` (e.g. ``seed0`` or ``fold3-seed0``) of every
    model; by default the first name all models have, so that all evaluated the same graphs."""
    runs = {}
    for results in sorted(folder.glob("runs/*/*/*/results.json")):
        summary = json.loads(results.read_text())
        if summary.get("finished") and (results.parent / "checkpoint.pt").exists():
            runs.setdefault(results.parent.name, []).append((results.parent, summary))
    if not runs:
        raise SystemExit(f"{folder}: no finished runs with a checkpoint under runs/")
    if name is None:
        models = {path.parent for group in runs.values() for path, _ in group}
        name = next((n for n, group in runs.items() if len(group) == len(models)), next(iter(runs)))
    if name not in runs:
        raise SystemExit(f"--run {name}: no finished run of that name in {folder} (there are {sorted(runs)})")
    return runs[name]


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
        data = graph.prepare_data(args, Processes("cpu"))
        index = data.split["valid"]
        if depth is None:
            reference, depth = index, sweep_depths(data.dataset, index)
            bins = depth_bins(depth)
        elif not torch.equal(index, reference):
            raise SystemExit(f"{run_dir}: evaluated other validation graphs than the first run; compare like with like")
        torch.manual_seed(args.seed)
        model = graph.build_model(args, data.dataset, data.out_channels)
        model.load_state_dict(load_checkpoint(run_dir / "checkpoint.pt", ("best",))["best"]["state"])
        y_true, y_pred = graph.predict(model, data.graphs, index, data.task, data.scaler, args, Processes("cpu"))
        row = {"run": str(run_dir.relative_to(folder)), "model": args.model, "metric": data.metric, "bins": []}
        for low, high in bins:
            mask = (depth >= low) & (depth <= high)
            truth, prediction = y_true[mask], y_pred[mask]
            value = graph.evaluate(data.dataset, truth, prediction)
            mean_loss = loss(data.task, truth, prediction)
            row["bins"].append({"depth": [low, high], "graphs": int(mask.sum()), data.metric: value, "loss": mean_loss})
        row["all"] = {data.metric: graph.evaluate(data.dataset, y_true, y_pred)}
        rows.append(row)
    return rows


def epoch_time(model, graphs, batch_size, steps, epoch_graphs, loss_fn) -> float:
    """Seconds of a training epoch over ``epoch_graphs`` graphs, from ``steps`` timed batches."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batches = list(DataLoader(graphs, batch_size=batch_size, shuffle=False))[: steps + 1]
    model.train()

    def step(batch):
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(batch), batch.y).backward()
        optimizer.step()

    step(batches[0])  # warm-up
    start = time.perf_counter()
    timed = 0
    for batch in batches[1:]:
        step(batch)
        timed += batch.num_graphs
    return (time.perf_counter() - start) / timed * epoch_graphs


def timing(runs, root, steps, backends=BACKENDS):
    torch.set_num_threads(1)
    rows = []
    for _, summary in runs:
        args = run_args(summary["config"], root)
        data = graph.prepare_data(args, Processes("cpu"))
        train = data.split["train"]
        whole = run_args({**summary["config"], "max_train_graphs": None}, root)
        epoch_graphs = len(graph.load(whole)[1]["train"])
        loss_fn = graph.loss_function(data.task, data.metric, data.scaler)
        graphs = data.graphs[train[: steps * args.batch_size + args.batch_size]]
        for backend in backends if args.model == "plstm" else (None,):
            torch.manual_seed(args.seed)
            model = graph.build_model(args, data.dataset, data.out_channels)
            for module in model.modules():
                if isinstance(module, PLSTMConv):
                    module.backend = backend
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
    timing_rows = [] if args.skip_timing else timing(runs, args.root, args.steps, args.backends)
    text = markdown(depth_rows, timing_rows, args.steps)
    (args.folder / "depth.json").write_text(json.dumps({"by_depth": depth_rows, "timing": timing_rows}, indent=1))
    (args.folder / "depth.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
