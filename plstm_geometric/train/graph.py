"""Train a graph-level model (pLSTM or a message-passing baseline) on a graph property prediction set.

    python -m plstm_geometric.train                                   # pLSTM on the embedded nci-tpsa set
    python -m plstm_geometric.train --dataset ogbg-molhiv --model gin-virtual --epochs 100
    torchrun --nproc_per_node 4 -m plstm_geometric.train --dataset ogbg-molpcba --model plstm

Every epoch trains once over the (optionally subsampled) training split, computes the dataset's metric on
the validation and test splits, and writes into the run folder ``--out``: ``checkpoint.pt`` (everything
needed to continue, replaced atomically), ``log.csv`` (one row per epoch), ``curves.png`` and
``results.json`` (configuration, metrics of the best-validation epoch, parameter count, timings, device,
git commit). The folder is locked while the run lives: a second run on it stops with an error.

``--resume`` continues from ``checkpoint.pt``, so a killed run loses at most the epoch it was in; with a
larger ``--epochs`` it extends a finished run. The learning rate of epoch ``e`` (1-based) of an
``--epochs N`` run with ``--warmup-epochs W`` is ``lr * e / W`` for ``e <= W`` and then
``lr * (1 + cos(pi * (e - 1 - W) / (N - W))) / 2`` under the cosine schedule: it is a function of ``e``,
``N`` and ``W`` alone, so an extended run goes on with the schedule of a run that had asked for ``N``
epochs from the start (a warm restart at that run's learning rate of epoch ``e``).

For ``--model plstm`` the pLSTM structure of every graph a run uses (oriented DAG, line graphs and node
levels of each sweep; :class:`~plstm_geometric.transforms.PreparePLSTM`) is computed once when the run
starts, not for every mini-batch of every epoch; the model's outputs are the same either way.

A run whose loss or metric becomes NaN or infinite stops with an error (exit status 1); its last
checkpoint and ``results.json`` describe the last finite epoch, and the best epoch is always a finite one.

Under ``torchrun`` (environment variables ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``) the model is wrapped in
DistributedDataParallel; ``--batch-size`` is per process. Evaluation splits the graphs over the processes
and gathers the predictions back into dataset order, so metrics equal those of a single process; only
rank 0 writes files.
"""

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data.distributed import DistributedSampler
from torch_geometric.loader import DataLoader
from tqdm.auto import tqdm

from plstm_geometric import models
from plstm_geometric.datasets import load_dataset
from plstm_geometric.datasets.tu import is_tu_name
from plstm_geometric.models.graph_model import PLSTM_POOLS, POOL_NORMS
from plstm_geometric.transforms import PreparePLSTM

from .processes import Processes
from .runs import (
    DEFAULT_THREADS,
    THREADS_HELP,
    Diverged,
    RunError,
    RunFolder,
    device_description,
    device_name,
    float_in,
    git_commit,
    int_at_least,
    load_checkpoint,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    rng_state,
    run_cli,
    save_checkpoint,
    seed_everything,
    set_rng_state,
    set_threads,
    thread_count,
    warmup_cosine,
    write_csv,
    write_json,
)

PROG = "python -m plstm_geometric.train"
MODELS = ("plstm", "gin", "gin-virtual", "gcn", "gine", "gatedgcn")
LOWER_IS_BETTER = ("rmse", "mae")
# configuration entries that must agree between a checkpoint and the run resuming from it (--epochs may grow)
RESUME_KEYS = (
    "dataset",
    "fold",
    "model",
    "hidden",
    "layers",
    "heads",
    "dropout",
    "pool",
    "seed",
    "batch_size",
    "lr",
    "weight_decay",
    "schedule",
    "warmup_epochs",
    "max_train_graphs",
    "max_eval_graphs",
    "grad_clip",
)
CHECKPOINT_KEYS = ("epoch", "config", "model", "optimizer", "best", "history", "rng")
NUM_FOLDS = 10  # TUGraphDataset.get_idx_split's default


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument(
        "--dataset",
        default="nci-tpsa",
        help="a name known to plstm_geometric.datasets.load_dataset, or one built under --root "
        "with `python -m plstm_geometric.datasets build-ogb --name NAME`",
    )
    parser.add_argument("--model", default="plstm", choices=MODELS, help="pLSTM or a message-passing baseline")
    parser.add_argument("--root", default="datasets", help="dataset root folder")
    parser.add_argument(
        "--fold",
        type=int_at_least(0),
        default=None,
        help=f"cross-validation fold (0 to {NUM_FOLDS - 1}) of a TU dataset; TU datasets only (default there: 0)",
    )
    parser.add_argument(
        "--epochs",
        type=positive_int,
        default=10,
        help="epochs in all; with --resume, larger than the checkpoint's extends its run",
    )
    parser.add_argument(
        "--batch-size",
        type=int_at_least(2),
        default=64,
        help="graphs per batch and process (at least 2: batch norm needs two graphs)",
    )
    parser.add_argument("--lr", type=positive_float, default=1e-3, help="peak learning rate")
    parser.add_argument("--weight-decay", type=non_negative_float, default=0.0, help="AdamW weight decay")
    parser.add_argument(
        "--schedule",
        default="cosine",
        choices=("cosine", "constant"),
        help="learning rate per epoch: cosine decay towards 0 over --epochs, or constant (OGB's setting)",
    )
    parser.add_argument(
        "--warmup-epochs",
        type=non_negative_int,
        default=0,
        help="epochs of linear learning-rate warm-up before the cosine decay (fewer than --epochs)",
    )
    parser.add_argument(
        "--grad-clip",
        type=positive_float,
        default=None,
        help="clip the gradient norm to this value (default: no clipping)",
    )
    parser.add_argument(
        "--hidden", type=positive_int, default=None, help="hidden channels (default: 64 for plstm, 300 else)"
    )
    parser.add_argument("--layers", type=positive_int, default=None, help="layers (default: 2 for plstm, 5 else)")
    parser.add_argument("--heads", type=positive_int, default=4, help="pLSTM heads")
    parser.add_argument(
        "--dropout",
        type=float_in(0.0, 1.0, high_open=True),
        default=None,
        help="dropout (default: 0 for plstm, 0.5 else)",
    )
    parser.add_argument(
        "--pool",
        default=None,
        choices=("mean", "sum", "max"),
        help=f"graph readout (plstm: {' or '.join(PLSTM_POOLS)}; default: sum for nci-tpsa, mean else)",
    )
    parser.add_argument(
        "--seed", type=non_negative_int, default=0, help="seed of the weights, the subsets and the data order"
    )
    parser.add_argument(
        "--device", type=device_name, default="auto", help="'auto' (CUDA when available), 'cpu', 'cuda', 'cuda:1', ..."
    )
    parser.add_argument(
        "--pool-norm",
        choices=POOL_NORMS,
        default=None,
        help="pLSTM only: batch normalisation of the pooled graph representation ('batch', the default) or "
        "none ('none'; with it a pLSTM has no batch statistics)",
    )
    parser.add_argument("--threads", type=thread_count, default=DEFAULT_THREADS, help=THREADS_HELP)
    parser.add_argument("--out", default=None, help="run folder (default: runs/<dataset>[-fold<k>]-<model>-<seed>)")
    parser.add_argument("--resume", action="store_true", help="continue from <out>/checkpoint.pt when it exists")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="start afresh in an --out that holds a finished run, replacing its files (without it such a "
        "run is kept and the command stops)",
    )
    parser.add_argument(
        "--max-train-graphs",
        type=int_at_least(2),
        default=None,
        help="train on a random subset of this many training graphs (quick runs; default: all)",
    )
    parser.add_argument(
        "--max-eval-graphs",
        type=positive_int,
        default=None,
        help="evaluate on a random subset of this many graphs per split (quick runs; the metric is "
        "then not the official one; default: all)",
    )
    parser.add_argument("--num-workers", type=non_negative_int, default=0, help="DataLoader worker processes")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm progress bars")
    return parser


def parse_args(argv=None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.warmup_epochs and (args.schedule != "cosine" or args.warmup_epochs >= args.epochs):
        parser.error(
            f"--warmup-epochs: expected fewer than --epochs ({args.epochs}) with --schedule cosine, "
            f"got {args.warmup_epochs} with --schedule {args.schedule}"
        )
    if args.fold is not None:
        if not is_tu_name(args.dataset, args.root):
            parser.error(f"--fold: only TU datasets have folds, got --dataset {args.dataset}")
        if args.fold >= NUM_FOLDS:
            parser.error(f"--fold: expected 0 to {NUM_FOLDS - 1}, got {args.fold}")
    if args.pool_norm is not None and args.model != "plstm":
        parser.error(f"--pool-norm: only --model plstm has it, got --model {args.model}")
    if args.model == "plstm" and args.pool_norm is None:
        args.pool_norm = "batch"
    if args.model == "plstm" and args.pool is not None and args.pool not in PLSTM_POOLS:
        parser.error(f"--pool: expected {' or '.join(PLSTM_POOLS)} with --model plstm, got {args.pool}")
    defaults = {"plstm": (64, 2, 0.0)}.get(args.model, (300, 5, 0.5))
    for name, default in zip(("hidden", "layers", "dropout"), defaults):
        if getattr(args, name) is None:
            setattr(args, name, default)
    if args.pool is None:
        # TPSA is a sum of atom contributions: a sum readout fits it (valid RMSE 21 vs 34 with mean, 8 epochs)
        args.pool = "sum" if args.dataset == "nci-tpsa" else "mean"
    if args.out is None:
        fold = "" if args.fold is None else f"-fold{args.fold}"
        args.out = os.path.join("runs", f"{args.dataset}{fold}-{args.model}-{args.seed}")
    return args


# ---------------------------------------------------------------------------------------------- data
def load(args):
    """The dataset and its index splits (subsampled as asked)."""
    try:
        dataset = load_dataset(args.dataset, args.root)
    except (ValueError, TypeError, FileNotFoundError) as error:
        raise RunError(f"--dataset {args.dataset}: {error}") from error
    split = dataset.get_idx_split() if args.fold is None else dataset.get_idx_split(fold=args.fold)
    split = {name: torch.as_tensor(index, dtype=torch.long) for name, index in split.items()}
    generator = torch.Generator().manual_seed(args.seed)
    limits = {"train": args.max_train_graphs, "valid": args.max_eval_graphs, "test": args.max_eval_graphs}
    for name, limit in limits.items():
        if limit is not None and limit < len(split[name]):
            # a random (seeded) subset, kept in dataset order so that runs are reproducible
            split[name] = split[name][torch.randperm(len(split[name]), generator=generator)[:limit]].sort().values
    if len(split["train"]) < 2:
        raise RunError(
            f"--dataset {args.dataset}: {len(split['train'])} training graph(s); training needs at "
            "least 2 (a batch of one graph is skipped: batch norm needs two)"
        )
    for name in ("valid", "test"):
        if len(split[name]) == 0:
            raise RunError(f"--dataset {args.dataset}: the {name} split is empty; nothing to select or report on")
    return dataset, split


def task_of(dataset) -> str:
    task = getattr(dataset, "task_type", None)
    if task not in ("regression", "binary classification", "multiclass classification"):
        raise ValueError(
            f"dataset.task_type: expected 'regression', 'binary classification' or "
            f"'multiclass classification', got {task!r}"
        )
    return task


def labels(dataset, index: torch.Tensor) -> torch.Tensor:
    """Float labels ``[len(index), num_tasks]`` (NaN where missing) of an ``InMemoryDataset``, whose ``y``
    holds one row per graph (read directly: collating the graphs would be slow on large sets)."""
    return dataset.y.view(len(dataset), -1)[index].float()


class TargetScaler:
    r"""Standardises regression targets with the training split's per-task mean and standard deviation,
    :math:`\tilde y = (y - \mu) / \sigma`, so that one learning rate suits targets of any scale; metrics are
    computed after undoing it."""

    def __init__(self, y_train: torch.Tensor):
        self.mean = torch.nanmean(y_train, dim=0)
        centred = torch.where(torch.isnan(y_train), torch.zeros_like(y_train), y_train - self.mean)
        count = (~torch.isnan(y_train)).sum(dim=0).clamp(min=2)
        self.std = (centred.pow(2).sum(dim=0) / (count - 1)).sqrt().clamp(min=1e-8)

    def scale(self, y: torch.Tensor) -> torch.Tensor:
        return (y - self.mean.to(y.device)) / self.std.to(y.device)

    def unscale(self, y: torch.Tensor) -> torch.Tensor:
        return y * self.std.to(y.device) + self.mean.to(y.device)


def loss_function(task: str, metric: str, scaler):
    """Training loss; labels that are NaN (missing in OGB's multi-task sets) are left out, as in OGB."""

    def regression(out, y):
        y = scaler.scale(y.view(out.shape).float())
        known = ~torch.isnan(y)
        error = out[known] - y[known]
        return error.abs().mean() if metric == "mae" else error.pow(2).mean()

    def binary(out, y):
        y = y.view(out.shape).float()
        known = ~torch.isnan(y)
        return F.binary_cross_entropy_with_logits(out[known], y[known])

    def multiclass(out, y):
        return F.cross_entropy(out, y.view(-1).long())

    return {"regression": regression, "binary classification": binary, "multiclass classification": multiclass}[task]


# ---------------------------------------------------------------------------------------------- model
def build_model(args, dataset, out_channels: int) -> torch.nn.Module:
    encoder = "ogb" if dataset[0].x.dtype == torch.long else "linear"
    in_channels = None if encoder == "ogb" else dataset.num_node_features
    edge_attr = dataset[0].edge_attr
    edge_dim = None if encoder == "ogb" or edge_attr is None else edge_attr.view(len(edge_attr), -1).size(1)
    common = dict(dropout=args.dropout, encoder=encoder, in_channels=in_channels, edge_dim=edge_dim, pool=args.pool)
    if args.model == "plstm":
        return models.PLSTMGraphModel(
            args.hidden, out_channels, args.layers, heads=args.heads, pool_norm=args.pool_norm, **common
        )
    model_class = {
        "gin": models.GIN,
        "gin-virtual": models.GINVirtual,
        "gcn": models.GCN,
        "gine": models.GINE,
        "gatedgcn": models.GatedGCN,
    }[args.model]
    return model_class(args.hidden, out_channels, args.layers, **common)


# ---------------------------------------------------------------------------------------------- epochs
def learning_rate(args, epoch: int) -> float:
    """The learning rate of ``epoch`` (1-based) of an ``args.epochs``-epoch run (see the module docstring)."""
    if args.schedule == "constant":
        return args.lr
    return args.lr * warmup_cosine(epoch - 1, args.epochs, args.warmup_epochs)


def train_epoch(model, loader, optimizer, loss_fn, args, processes, epoch) -> float:
    """One pass over this process's share of the training graphs; returns the mean loss over all processes."""
    model.train()
    total, count = torch.zeros(2, dtype=torch.float64, device=processes.device)
    bar = tqdm(loader, desc=f"epoch {epoch}", leave=False, disable=args.no_progress or not processes.main)
    for batch in bar:
        # batch norm over graphs (virtual node) cannot train on a single graph; since every process has
        # batches of the same sizes, all processes skip the same step and DDP stays in step
        if batch.num_graphs < 2:
            continue
        batch = batch.to(processes.device)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(batch), batch.y)
        loss.backward()
        if args.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        optimizer.step()
        total += loss.detach().double() * batch.num_graphs
        count += batch.num_graphs
        bar.set_postfix(loss=f"{loss.item():.4f}")
    sums = processes.all_reduce(torch.stack([total, count]))
    return (sums[0] / sums[1].clamp(min=1)).item()


@torch.no_grad()
def predict(model, dataset, index, task, scaler, args, processes):
    """Predictions and labels for ``dataset[index]`` in that order, computed in shares by all processes."""
    model.eval()
    share = index[processes.rank :: processes.world_size]
    loader = DataLoader(dataset[share], batch_size=args.batch_size, shuffle=False, num_workers=args.num_workers)
    outputs, targets = [], []
    for batch in loader:
        batch = batch.to(processes.device)
        out = model(batch)
        if task == "regression":
            out = scaler.unscale(out)
        elif task == "multiclass classification":
            out = out.argmax(dim=-1, keepdim=True)
        outputs.append(out.float().cpu())
        targets.append(batch.y.view(len(out), -1).cpu())
    width = 1 if task == "multiclass classification" else model.out_channels
    mine = (
        share,
        torch.cat(outputs) if outputs else torch.empty(0, width),
        torch.cat(targets) if targets else torch.empty(0, width),
    )
    gathered = processes.all_gather(mine)
    positions = torch.cat([g[0] for g in gathered])
    order = torch.argsort(positions)
    y_pred = torch.cat([g[1] for g in gathered])[order]
    y_true = torch.cat([g[2] for g in gathered])[order]
    return y_true, y_pred


def evaluate(dataset, y_true, y_pred) -> float:
    """The dataset's OGB metric (``dataset.eval_metric``) through its OGB-style evaluator; NaN when the
    predictions are not finite (a diverged model)."""
    if not torch.isfinite(y_pred).all():
        return math.nan
    evaluator = dataset.evaluator
    return float(evaluator.eval({"y_true": y_true.numpy(), "y_pred": y_pred.numpy()})[dataset.eval_metric])


def is_better(metric: str, value: float, best) -> bool:
    """Whether ``value`` is a better validation score than ``best``: a non-finite value never is, and
    anything finite beats a missing or non-finite best."""
    if value is None or not math.isfinite(value):
        return False
    if best is None or not math.isfinite(best):
        return True
    return value < best if metric in LOWER_IS_BETTER else value > best


# ---------------------------------------------------------------------------------------------- files
def write_plot(path: Path, history: list, metric: str, best_epoch) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .runs import atomic_write

    epochs = [row["epoch"] for row in history]
    figure, (loss_axis, metric_axis) = plt.subplots(1, 2, figsize=(10, 4))
    loss_axis.plot(epochs, [row["train_loss"] for row in history], marker="o")
    loss_axis.set(xlabel="epoch", ylabel="training loss", title="loss", yscale="log")
    for split in ("valid", "test"):
        metric_axis.plot(epochs, [row[f"{split}_{metric}"] for row in history], marker="o", label=split)
    if best_epoch is not None:
        metric_axis.axvline(best_epoch, color="grey", linestyle="--", label="best valid")
    metric_axis.set(xlabel="epoch", ylabel=metric, title=metric)
    metric_axis.legend()
    figure.tight_layout()
    atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=100))
    plt.close(figure)


# ---------------------------------------------------------------------------------------------- a run
class PreparedGraphs:
    """The graphs ``dataset[index]`` with their pLSTM structure computed once by ``transform``
    (:class:`~plstm_geometric.transforms.PreparePLSTM`), indexed by dataset position like the dataset:
    ``graphs[tensor]`` is the list of those graphs, which PyG's ``DataLoader`` takes as it is."""

    def __init__(self, dataset, index: torch.Tensor, transform: PreparePLSTM):
        positions = index.unique().tolist()
        prepared = transform.prepare_many([dataset[position] for position in positions])
        self.graphs = dict(zip(positions, prepared))

    def __len__(self) -> int:
        return len(self.graphs)

    def __getitem__(self, index):
        if isinstance(index, torch.Tensor):
            return [self.graphs[position] for position in index.tolist()]
        return self.graphs[int(index)]


def prepare_graphs(args, dataset, split: dict):
    """What the loaders read: for pLSTM the graphs of the splits with their structure precomputed (the
    sweeps the model's blocks run: forward, and reverse from two blocks on), else the dataset itself."""
    if args.model != "plstm":
        return dataset
    directions = ("forward", "reverse") if args.layers > 1 else ("forward",)
    return PreparedGraphs(dataset, torch.cat(list(split.values())), PreparePLSTM(directions=directions))


@dataclass
class Data:
    """What the run trains on: the dataset, its splits and what follows from its task; ``graphs`` is what
    the loaders index by dataset position (see :func:`prepare_graphs`)."""

    dataset: object
    graphs: object
    split: dict
    task: str
    metric: str
    scaler: object
    out_channels: int


@dataclass
class State:
    """What a checkpoint restores: the epochs so far and the best-validation epoch."""

    history: list = field(default_factory=list)
    best: dict = field(default_factory=lambda: {"epoch": None, "valid": None, "state": None})

    @property
    def epochs_done(self) -> int:
        return len(self.history)


def prepare_data(args, processes) -> Data:
    # rank 0 first: a dataset built on first use must not be built by several processes at once
    if not processes.main:
        processes.barrier()
    dataset, split = load(args)
    if processes.main:
        processes.barrier()
    task = task_of(dataset)
    y_train = labels(dataset, split["train"])
    scaler = TargetScaler(y_train) if task == "regression" else None
    out_channels = dataset.num_classes if task == "multiclass classification" else y_train.size(1)
    return Data(dataset, prepare_graphs(args, dataset, split), split, task, dataset.eval_metric, scaler, out_channels)


def resume(args, config, folder: RunFolder, processes, model, optimizer) -> State:
    """The state of ``<out>/checkpoint.pt`` loaded into ``model`` and ``optimizer`` (an empty state without
    ``--resume`` or without a checkpoint). Read by rank 0 and sent to the others: nodes need not share a
    file system."""
    path = folder / "checkpoint.pt"
    checkpoint = None
    if processes.main and args.resume and path.exists():
        checkpoint = load_checkpoint(path, required=CHECKPOINT_KEYS)
    checkpoint = processes.broadcast(checkpoint)
    if checkpoint is None:
        return State()
    saved = checkpoint["config"]
    for key in RESUME_KEYS:
        if saved.get(key) != config[key]:
            raise RunError(
                f"--resume: {path} was written with {key}={saved.get(key)!r}, this run has "
                f"{key}={config[key]!r}; resume with the same value or choose another --out"
            )
    if checkpoint["epoch"] > args.epochs:
        raise RunError(
            f"--resume: {path} is after epoch {checkpoint['epoch']}, more than --epochs {args.epochs}; "
            f"pass --epochs {checkpoint['epoch']} or more"
        )
    try:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
    except (RuntimeError, ValueError, KeyError) as error:
        raise RunError(
            f"{path}: its weights do not fit this model ({error}); delete it or choose another --out"
        ) from None
    states = checkpoint["rng"]
    if len(states) == processes.world_size:
        set_rng_state(states[processes.rank])
    if processes.main:
        print(f"resuming {folder.path} after epoch {checkpoint['epoch']} of {args.epochs}", file=sys.stderr)
    return State(checkpoint["history"], checkpoint["best"])


def run_epoch(epoch, args, data: Data, processes, model, trained, optimizer, loader, loss_fn) -> dict:
    """Trains one epoch and evaluates it; the log row."""
    start = time.perf_counter()
    lr = learning_rate(args, epoch)
    for group in optimizer.param_groups:
        group["lr"] = lr
    loader.sampler.set_epoch(epoch)
    train_loss = train_epoch(trained, loader, optimizer, loss_fn, args, processes, epoch)
    train_time = time.perf_counter() - start
    # batch-norm statistics drift apart after each process's last training step; evaluate (and save)
    # everywhere with those of rank 0, whose model is the one written to disk
    processes.broadcast_buffers(model)
    row = {"epoch": epoch, "train_loss": train_loss, "lr": lr}
    for name in ("valid", "test"):
        prediction = predict(model, data.graphs, data.split[name], data.task, data.scaler, args, processes)
        row[f"{name}_{data.metric}"] = evaluate(data.dataset, *prediction)
    row["train_time_s"] = train_time
    row["epoch_time_s"] = time.perf_counter() - start
    return row


def check_finite(row: dict, metric: str, folder: RunFolder) -> None:
    bad = [
        f"{key} {row[key]}"
        for key in ("train_loss", f"valid_{metric}", f"test_{metric}")
        if not math.isfinite(row[key])
    ]
    if bad:
        raise Diverged(
            f"epoch {row['epoch']}: {', '.join(bad)}: the run diverged; lower --lr or set --grad-clip. "
            f"{folder.path} keeps the checkpoint and results of the last finite epoch"
        )


def results(args, config, data: Data, state: State, processes, num_parameters, commit, final=None) -> dict:
    """The content of ``results.json``."""
    best_epoch, metric = state.best["epoch"], data.metric
    if final is None and best_epoch is not None:
        row = state.history[best_epoch - 1]
        final = {"valid": row[f"valid_{metric}"], "test": row[f"test_{metric}"]}
    return {
        "config": config,
        "dataset": args.dataset,
        "model": args.model,
        "task_type": data.task,
        "metric": metric,
        "lower_is_better": metric in LOWER_IS_BETTER,
        "num_parameters": num_parameters,
        "num_graphs": {name: len(index) for name, index in data.split.items()},
        "best_epoch": best_epoch,
        "metrics": final or {},
        "epochs_completed": state.epochs_done,
        "epoch_times_s": [row["epoch_time_s"] for row in state.history],
        "device": device_description(processes.device),
        "world_size": processes.world_size,
        "torch_version": torch.__version__,
        "git_commit": commit,
        "finished": final is not None and len(final) == 3,
    }


def train(args, processes, folder: RunFolder) -> dict:
    """The whole run in ``folder``; returns the results dict."""
    seed_everything(args.seed)
    data = prepare_data(args, processes)
    torch.manual_seed(args.seed)  # the same initial weights on every process
    model = build_model(args, data.dataset, data.out_channels).to(processes.device)
    num_parameters = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    torch.manual_seed(args.seed + processes.rank)  # different dropout masks on different processes
    config = dict(vars(args))
    state = resume(args, config, folder, processes, model, optimizer)

    trained = processes.wrap(model)
    train_set = data.graphs[data.split["train"]]
    sampler = DistributedSampler(
        train_set, num_replicas=processes.world_size, rank=processes.rank, shuffle=True, seed=args.seed
    )
    loader = DataLoader(train_set, batch_size=args.batch_size, sampler=sampler, num_workers=args.num_workers)
    loss_fn = loss_function(data.task, data.metric, data.scaler)
    commit = git_commit()

    for epoch in range(state.epochs_done + 1, args.epochs + 1):
        row = run_epoch(epoch, args, data, processes, model, trained, optimizer, loader, loss_fn)
        if processes.main:
            write_csv(folder / "log.csv", [*state.history, row])
        check_finite(row, data.metric, folder)
        state.history.append(row)
        if is_better(data.metric, row[f"valid_{data.metric}"], state.best["valid"]):
            state.best = {
                "epoch": epoch,
                "valid": row[f"valid_{data.metric}"],
                "state": {key: value.detach().cpu().clone() for key, value in model.state_dict().items()},
            }
        rng = processes.all_gather(rng_state())
        if processes.main:
            tqdm.write(
                f"epoch {epoch:3d}  loss {row['train_loss']:.4f}  valid {data.metric} "
                f"{row[f'valid_{data.metric}']:.4f}  test {data.metric} {row[f'test_{data.metric}']:.4f}  "
                f"({row['epoch_time_s']:.1f} s)",
                file=sys.stderr,
            )
            write_plot(folder / "curves.png", state.history, data.metric, state.best["epoch"])
            write_json(folder / "results.json", results(args, config, data, state, processes, num_parameters, commit))
            checkpoint = {
                "epoch": epoch,
                "config": config,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "best": state.best,
                "history": state.history,
                "rng": rng,
            }
            # the checkpoint is written last: once it names epoch k, every other file describes epoch k
            save_checkpoint(folder / "checkpoint.pt", checkpoint)

    # the best-validation weights on every split (train: the graphs trained on)
    model.load_state_dict(state.best["state"])
    final = {
        name: evaluate(
            data.dataset, *predict(model, data.graphs, data.split[name], data.task, data.scaler, args, processes)
        )
        for name in ("train", "valid", "test")
    }
    summary = results(args, config, data, state, processes, num_parameters, commit, final)
    if processes.main:
        write_json(folder / "results.json", summary)
        tqdm.write(
            f"best epoch {state.best['epoch']}: " + "  ".join(f"{k} {data.metric} {v:.4f}" for k, v in final.items()),
            file=sys.stderr,
        )
    return summary


# ---------------------------------------------------------------------------------------------- entry points
def run(argv=None) -> dict:
    """Runs the training described by the command-line arguments ``argv`` and returns the results dict
    (the content of ``results.json``); a :class:`~plstm_geometric.train.runs.RunError` when it cannot."""
    args = parse_args(argv)
    set_threads(args.threads)
    processes = Processes(args.device)
    try:
        # only rank 0 writes, so only rank 0 holds the folder's lock
        with RunFolder(args.out, lock=processes.main) as folder:
            if processes.main and not (args.resume or args.overwrite):
                refuse_finished_run(folder)
            return train(args, processes, folder)
    finally:
        processes.close()


def refuse_finished_run(folder: RunFolder) -> None:
    """Stops before a fresh run would replace the checkpoint and results of a finished one."""
    results = folder / "results.json"
    try:
        finished = results.is_file() and json.loads(results.read_text()).get("finished") is True
    except (OSError, ValueError, AttributeError):
        finished = False
    if finished:
        raise RunError(
            f"--out: {folder.path} holds a finished run ({results}); pass --resume to extend it (with a larger "
            "--epochs), --overwrite to replace it, or choose another --out"
        )


def main(argv=None) -> int:
    """The command line (console script ``plstm-train``): exit status 0, 1 on a run error, 2 on bad flags."""
    return run_cli(run, argv, PROG)


if __name__ == "__main__":
    sys.exit(main())
