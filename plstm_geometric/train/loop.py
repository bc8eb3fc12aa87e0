"""The epoch loop of a graph training run: the learning rate of an epoch, one training pass, predictions
gathered over processes, the state a checkpoint restores and the checks on resuming from one.

Under DistributedDataParallel every process trains on its share and evaluation gathers the predictions
back into dataset order (see :class:`~plstm_geometric.train.processes.Processes`).
"""

import math
import sys
import time
from dataclasses import dataclass, field

import torch
from torch_geometric.loader import DataLoader
from tqdm.auto import tqdm

from .errors import Diverged, RunError
from .files import RunFolder
from .runs import load_checkpoint, set_rng_state, warmup_cosine
from .tasks import evaluate

__all__ = [
    "CHECKPOINT_KEYS",
    "RESUME_KEYS",
    "State",
    "check_checkpoint",
    "check_finite",
    "learning_rate",
    "predict",
    "resume",
    "run_epoch",
    "train_epoch",
]

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
HISTORY_KEYS = ("epoch", "train_loss", "lr", "train_time_s", "epoch_time_s")


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


@dataclass
class State:
    """What a checkpoint restores: the epochs so far and the best-validation epoch."""

    history: list = field(default_factory=list)
    best: dict = field(default_factory=lambda: {"epoch": None, "valid": None, "state": None})

    @property
    def epochs_done(self) -> int:
        return len(self.history)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _tensor_dict(value) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())


def _rng_states(value) -> bool:
    wanted = {"torch", "cuda", "numpy", "python"}
    return isinstance(value, list) and all(isinstance(s, dict) and wanted <= set(s) for s in value)


def check_checkpoint(checkpoint: dict, path, metric: str) -> None:
    r"""Checks the fields of a checkpoint that loaded safely before a run resumes from it: ``epoch`` a
    positive int, ``config`` a dict, ``model`` a dict of tensors, ``optimizer`` a dict, ``history`` one row
    per epoch numbered 1 to ``epoch`` with finite numbers, ``best`` an epoch of that history (or none yet)
    with its weights, ``rng`` a list of RNG states. A :class:`RunError` names the field otherwise."""
    epoch, history, best = checkpoint["epoch"], checkpoint["history"], checkpoint["best"]
    problem = None
    if not _is_int(epoch) or epoch < 1:
        problem = f"epoch is {epoch!r}, expected a positive int"
    elif not isinstance(checkpoint["config"], dict):
        problem = "config is not a dict"
    elif not _tensor_dict(checkpoint["model"]):
        problem = "model is not a dict of tensors"
    elif not isinstance(checkpoint["optimizer"], dict):
        problem = "optimizer is not a dict"
    elif not isinstance(history, list) or len(history) != epoch:
        problem = f"history has {len(history) if isinstance(history, list) else 'no'} rows for epoch {epoch}"
    elif not _rng_states(checkpoint["rng"]):
        problem = "rng is not a list of RNG states"
    else:
        columns = (*HISTORY_KEYS, f"valid_{metric}", f"test_{metric}")
        for number, row in enumerate(history, start=1):
            if not isinstance(row, dict) or row.get("epoch") != number:
                problem = f"history row {number} is not the row of epoch {number}"
            elif not all(_is_number(row.get(key)) for key in columns):
                problem = f"history row {number} lacks a number for one of {columns}"
            if problem:
                break
    if problem is None:
        best_epoch = best.get("epoch", "<absent>") if isinstance(best, dict) else "<absent>"
        if not isinstance(best, dict) or not {"epoch", "valid", "state"} <= set(best):
            problem = "best is not a dict with epoch, valid and state"
        elif best_epoch is None:
            problem = None if best["state"] is None else "best has weights but no epoch"
        elif not _is_int(best_epoch) or not 1 <= best_epoch <= epoch or not _tensor_dict(best["state"]):
            problem = f"best names epoch {best_epoch!r} of {epoch}, or its weights are not a dict of tensors"
        elif not _is_number(best["valid"]):
            problem = f"best valid is {best['valid']!r}, expected a number"
    if problem:
        raise RunError(
            f"--resume: {path}: damaged checkpoint ({problem}); delete it (or the run folder) to train "
            "from scratch, or choose another --out"
        )


def resume(args, config, folder: RunFolder, processes, model, optimizer, metric: str) -> State:
    """The state of ``<out>/checkpoint.pt`` loaded into ``model`` and ``optimizer`` (an empty state without
    ``--resume`` or without a checkpoint). Read by rank 0 and sent to the others: nodes need not share a
    file system."""
    path = folder / "checkpoint.pt"
    checkpoint = None
    if processes.main and args.resume and path.exists():
        checkpoint = load_checkpoint(path, required=CHECKPOINT_KEYS)
        check_checkpoint(checkpoint, path, metric)
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
    except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as error:
        raise RunError(
            f"{path}: its weights do not fit this model ({error}); delete it or choose another --out"
        ) from None
    states = checkpoint["rng"]
    if len(states) == processes.world_size:
        try:
            set_rng_state(states[processes.rank])
        except (RuntimeError, ValueError, TypeError, KeyError, AttributeError) as error:
            raise RunError(f"--resume: {path}: damaged checkpoint (rng: {error}); delete it to start afresh") from None
    if processes.main:
        print(f"resuming {folder.path} after epoch {checkpoint['epoch']} of {args.epochs}", file=sys.stderr)
    return State(checkpoint["history"], checkpoint["best"])


def run_epoch(epoch, args, data, processes, model, trained, optimizer, loader, loss_fn) -> dict:
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
