"""The finished runs of a results folder (``runs/<dataset>/<model>/<run>``, as :mod:`benchmarks.suite` writes
them), rebuilt as the training CLI built them: arguments, data, model and loss.

Everything the benchmarks take from the training CLI goes through this module, and only these four
functions of it: ``parse_args`` (a run's recorded configuration back into the CLI's arguments, defaults
included), ``prepare_data`` (the run's dataset, splits and precomputed structures), ``build_model`` and
``loss_function``. Predictions and metrics are computed here from the dataset's own evaluator.
"""

from pathlib import Path

import torch
from torch_geometric.loader import DataLoader

from plstm_geometric.train.cli import parse_args
from plstm_geometric.train.graph import build_model, prepare_data
from plstm_geometric.train.processes import Processes
from plstm_geometric.train.record import read_record
from plstm_geometric.train.runs import load_checkpoint
from plstm_geometric.train.tasks import loss_function

from .harness import seeded
from .plstm_model import plstm_graph_model

# results.json configuration entries that rebuild a run's data and model
FLAGS = ("dataset", "model", "root", "fold", "seed", "hidden", "layers", "heads", "dropout", "pool", "batch_size")
# pLSTM's layer flags (recorded as null for the other models, so not passed to them)
PLSTM_FLAGS = ("pool_norm", "first_sweep", "normalize_over", "transition_start")
LIMITS = ("max_train_graphs", "max_eval_graphs")

__all__ = [
    "best_weights",
    "evaluate",
    "finished_runs",
    "loss",
    "predict",
    "prepare",
    "run_args",
    "run_model",
    "train_split_size",
]


def run_args(config: dict, root: str | None):
    """The CLI's arguments of a run from its recorded ``config`` (``root`` replaces the data root)."""
    argv = []
    for key in FLAGS + PLSTM_FLAGS + LIMITS:
        value = root if key == "root" and root is not None else config.get(key)
        if value is not None:
            values = value if isinstance(value, (list, tuple)) else [value]
            argv += [f"--{key.replace('_', '-')}", *(str(item) for item in values)]
    return parse_args(argv + ["--device", "cpu", "--threads", "1", "--no-progress"])


def finished_runs(folder: Path, name: str | None = None) -> list[tuple[Path, dict]]:
    """The finished runs (with a checkpoint) named ``name`` (e.g. ``seed0`` or ``fold3-seed0``) of every
    model; by default the first name all models have, so that all evaluated the same graphs."""
    runs = {}
    for results in sorted(folder.glob("runs/*/*/*/results.json")):
        summary = read_record(results)  # the run record, checked and upgraded to the current schema
        if summary["finished"] and (results.parent / "checkpoint.pt").exists():
            runs.setdefault(results.parent.name, []).append((results.parent, summary))
    if not runs:
        raise SystemExit(f"{folder}: no finished runs with a checkpoint under runs/")
    if name is None:
        models = {path.parent for group in runs.values() for path, _ in group}
        name = next((n for n, group in runs.items() if len(group) == len(models)), next(iter(runs)))
    if name not in runs:
        raise SystemExit(f"--run {name}: no finished run of that name in {folder} (there are {sorted(runs)})")
    return runs[name]


def prepare(args):
    """The run's data as the CLI prepares it on one CPU process (``dataset``, ``graphs``, ``split``, ``task``,
    ``metric``, ``scaler``, ``out_channels``)."""
    return prepare_data(args, Processes("cpu"))


def run_model(args, data, backend: str | None = None) -> torch.nn.Module:
    """The run's model, initialised from the run's seed without touching the caller's generator. With a
    ``backend``, a pLSTM passes it to every ``PLSTMConv`` through its constructor."""
    with seeded(args.seed):
        if backend is None or args.model != "plstm":
            return build_model(args, data.dataset, data.out_channels)
        sizes = {"hidden": args.hidden, "layers": args.layers, "heads": args.heads}
        common = {"dropout": args.dropout, "pool": args.pool, "pool_norm": args.pool_norm}
        layer = {key: getattr(args, key) for key in PLSTM_FLAGS[1:] if getattr(args, key) is not None}
        return plstm_graph_model(data.dataset[0], data.out_channels, **sizes, **common, backend=backend, **layer)


def best_weights(model: torch.nn.Module, run_dir: Path) -> torch.nn.Module:
    """``model`` with the best-validation weights of the run's ``checkpoint.pt``."""
    model.load_state_dict(load_checkpoint(run_dir / "checkpoint.pt", ("best",))["best"]["state"])
    return model


def loss(data):
    """The run's training loss ``(out, y) -> loss``."""
    return loss_function(data.task, data.metric, data.scaler)


def train_split_size(args, dataset) -> int:
    """Graphs in the dataset's whole training split (the run may have trained on a subset)."""
    split = dataset.get_idx_split() if args.fold is None else dataset.get_idx_split(fold=args.fold)
    return len(split["train"])


@torch.no_grad()
def predict(model: torch.nn.Module, data, index: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels and predictions of the graphs ``index``, in that order, as the CLI evaluates them: regression
    outputs unscaled, multiclass outputs as classes."""
    model.eval()
    outputs, targets = [], []
    for batch in DataLoader(data.graphs[index], batch_size=batch_size, shuffle=False):
        out = model(batch)
        if data.task == "regression":
            out = data.scaler.unscale(out)
        elif data.task == "multiclass classification":
            out = out.argmax(dim=-1, keepdim=True)
        outputs.append(out.float())
        targets.append(batch.y.view(len(out), -1))
    return torch.cat(targets), torch.cat(outputs)


def evaluate(dataset, y_true: torch.Tensor, y_pred: torch.Tensor) -> float:
    """The dataset's metric (``dataset.eval_metric``) from its evaluator; NaN for non-finite predictions."""
    if not torch.isfinite(y_pred).all():
        return float("nan")
    result = dataset.evaluator.eval({"y_true": y_true.numpy(), "y_pred": y_pred.numpy()})
    return float(result[dataset.eval_metric])
