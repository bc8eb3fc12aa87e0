"""Train a graph-level model (pLSTM or a message-passing baseline) on a graph property prediction set.

    python -m plstm_geometric.train                                   # pLSTM on the embedded nci-tpsa set
    python -m plstm_geometric.train --dataset ogbg-molhiv --model gin-virtual --epochs 100
    torchrun --nproc_per_node 4 -m plstm_geometric.train --dataset ogbg-molpcba --model plstm

Every epoch trains once over the (optionally subsampled) training split, computes the dataset's metric on
the validation and test splits, and writes into ``--out``: ``checkpoint.pt`` (everything needed to
continue, replaced atomically), ``log.csv`` (one row per epoch), ``curves.png`` and ``results.json``
(configuration, metrics of the best-validation epoch, parameter count, timings, device, git commit).
``--resume`` continues from ``checkpoint.pt``, so a killed run loses at most the epoch it was in.

Under ``torchrun`` (environment variables ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``) the model is wrapped in
DistributedDataParallel; ``--batch-size`` is per process. Evaluation splits the graphs over the processes
and gathers the predictions back into dataset order, so metrics equal those of a single process; only
rank 0 writes files.
"""

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data.distributed import DistributedSampler
from torch_geometric.loader import DataLoader
from tqdm.auto import tqdm

from plstm_geometric import models
from plstm_geometric.datasets import load_dataset

MODELS = ("plstm", "gin", "gin-virtual", "gcn")
LOWER_IS_BETTER = ("rmse", "mae")
# configuration entries that must agree between a checkpoint and the run resuming from it
RESUME_KEYS = ("dataset", "fold", "model", "hidden", "layers", "heads", "dropout", "pool", "seed", "batch_size", "lr",
               "weight_decay", "schedule", "epochs", "max_train_graphs", "max_eval_graphs", "grad_clip")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m plstm_geometric.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="nci-tpsa", help="dataset name for plstm_geometric.datasets.load_dataset")
    parser.add_argument("--model", default="plstm", choices=MODELS)
    parser.add_argument("--root", default="datasets", help="dataset root folder")
    parser.add_argument("--fold", type=int, default=None, help="cross-validation run of a TU dataset (default 0)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64, help="graphs per batch and process")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--schedule", default="cosine", choices=("cosine", "constant"),
                        help="learning rate per epoch: cosine decay to 0 over --epochs, or constant (OGB's setting)")
    parser.add_argument("--grad-clip", type=float, default=None, help="clip the gradient norm to this value")
    parser.add_argument("--hidden", type=int, default=None, help="hidden channels (default: 64 for plstm, 300 else)")
    parser.add_argument("--layers", type=int, default=None, help="layers (default: 2 for plstm, 5 else)")
    parser.add_argument("--heads", type=int, default=4, help="pLSTM heads")
    parser.add_argument("--dropout", type=float, default=None, help="dropout (default: 0 for plstm, 0.5 else)")
    parser.add_argument("--pool", default=None, choices=("mean", "sum", "max"),
                        help="graph readout (pLSTM: mean or sum; default: sum for nci-tpsa, mean else)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="'auto' (CUDA when available), 'cpu', 'cuda', 'cuda:1', ...")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--out", default=None, help="output folder (default: runs/<dataset>[-fold<k>]-<model>-<seed>)")
    parser.add_argument("--resume", action="store_true", help="continue from <out>/checkpoint.pt when it exists")
    parser.add_argument("--max-train-graphs", type=int, default=None,
                        help="train on a random subset of this many training graphs (quick runs)")
    parser.add_argument("--max-eval-graphs", type=int, default=None,
                        help="evaluate on a random subset of this many graphs per split (quick runs; the metric is "
                             "then not the official one)")
    parser.add_argument("--num-workers", type=int, default=0, help="DataLoader worker processes")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm progress bars")
    args = parser.parse_args(argv)
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
    for name in ("epochs", "batch_size", "hidden", "layers", "heads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')}: expected a positive integer, got {getattr(args, name)}")
    return args


# ---------------------------------------------------------------------------------------------- processes
class Processes:
    """This process's place among the torchrun processes (a single process when not launched by torchrun)."""

    def __init__(self, device_arg: str):
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.distributed = self.world_size > 1
        if device_arg == "auto":
            device_arg = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device_arg)
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", self.local_rank)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        if self.distributed and not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def all_gather(self, obj) -> list:
        """Every process's ``obj`` in rank order (``[obj]`` in a single process)."""
        if not self.distributed:
            return [obj]
        gathered = [None] * self.world_size
        dist.all_gather_object(gathered, obj)
        return gathered

    def barrier(self):
        if self.distributed:
            dist.barrier()

    def broadcast(self, obj):
        """Rank 0's ``obj`` on every process."""
        if not self.distributed:
            return obj
        container = [obj]
        dist.broadcast_object_list(container, src=0)
        return container[0]

    def close(self):
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()


# ---------------------------------------------------------------------------------------------- data
def load(args):
    """The dataset and its index splits (subsampled as asked)."""
    dataset = load_dataset(args.dataset, args.root)
    split = dataset.get_idx_split() if args.fold is None else dataset.get_idx_split(fold=args.fold)
    split = {name: torch.as_tensor(index, dtype=torch.long) for name, index in split.items()}
    generator = torch.Generator().manual_seed(args.seed)
    limits = {"train": args.max_train_graphs, "valid": args.max_eval_graphs, "test": args.max_eval_graphs}
    for name, limit in limits.items():
        if limit is not None and limit < len(split[name]):
            # a random (seeded) subset, kept in dataset order so that runs are reproducible
            split[name] = split[name][torch.randperm(len(split[name]), generator=generator)[:limit]].sort().values
    return dataset, split


def task_of(dataset) -> str:
    task = getattr(dataset, "task_type", None)
    if task not in ("regression", "binary classification", "multiclass classification"):
        raise ValueError(f"dataset.task_type: expected 'regression', 'binary classification' or "
                         f"'multiclass classification', got {task!r}")
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
        return models.PLSTMGraphModel(args.hidden, out_channels, args.layers, heads=args.heads, **common)
    model_class = {"gin": models.GIN, "gin-virtual": models.GINVirtual, "gcn": models.GCN}[args.model]
    return model_class(args.hidden, out_channels, args.layers, **common)


# ---------------------------------------------------------------------------------------------- epochs
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
    sums = torch.stack([total, count])
    if processes.distributed:
        dist.all_reduce(sums)
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
    mine = (share, torch.cat(outputs) if outputs else torch.empty(0, width),
            torch.cat(targets) if targets else torch.empty(0, width))
    gathered = processes.all_gather(mine)
    positions = torch.cat([g[0] for g in gathered])
    order = torch.argsort(positions)
    y_pred = torch.cat([g[1] for g in gathered])[order]
    y_true = torch.cat([g[2] for g in gathered])[order]
    return y_true, y_pred


def evaluate(dataset, y_true, y_pred) -> float:
    """The dataset's OGB metric (``dataset.eval_metric``) through its OGB-style evaluator."""
    evaluator = dataset.evaluator
    return float(evaluator.eval({"y_true": y_true.numpy(), "y_pred": y_pred.numpy()})[dataset.eval_metric])


def is_better(metric: str, value: float, best) -> bool:
    if best is None:
        return True
    return value < best if metric in LOWER_IS_BETTER else value > best


# ---------------------------------------------------------------------------------------------- files
def atomic_write(path: Path, write):
    """``write(tmp_path)`` then rename over ``path``: a reader (or a resumed run) never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def rng_state() -> dict:
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }


def set_rng_state(state: dict):
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def git_commit():
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    return result.stdout.strip() or None


def write_csv(path: Path, history: list):
    def write(tmp):
        with open(tmp, "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=list(history[0]))
            writer.writeheader()
            writer.writerows(history)

    atomic_write(path, write)


def write_plot(path: Path, history: list, metric: str, best_epoch: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    figure, (loss_axis, metric_axis) = plt.subplots(1, 2, figsize=(10, 4))
    loss_axis.plot(epochs, [row["train_loss"] for row in history], marker="o")
    loss_axis.set(xlabel="epoch", ylabel="training loss", title="loss", yscale="log")
    for split in ("valid", "test"):
        metric_axis.plot(epochs, [row[f"{split}_{metric}"] for row in history], marker="o", label=split)
    metric_axis.axvline(best_epoch, color="grey", linestyle="--", label="best valid")
    metric_axis.set(xlabel="epoch", ylabel=metric, title=metric)
    metric_axis.legend()
    figure.tight_layout()
    atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=100))
    plt.close(figure)


def write_json(path: Path, results: dict):
    def write(tmp):
        with open(tmp, "w") as file:
            json.dump(results, file, indent=2)

    atomic_write(path, write)


# ---------------------------------------------------------------------------------------------- main
def main(argv=None) -> dict:
    """Runs the training described by the command-line arguments ``argv`` and returns the results dict
    (the content of ``results.json``)."""
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    processes = Processes(args.device)
    try:
        return _run(args, processes)
    finally:
        processes.close()


def _run(args, processes) -> dict:
    out_dir = Path(args.out)
    checkpoint_path = out_dir / "checkpoint.pt"
    if processes.main:
        out_dir.mkdir(parents=True, exist_ok=True)

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    # rank 0 first: a dataset built on first use must not be built by several processes at once
    if not processes.main:
        processes.barrier()
    dataset, split = load(args)
    if processes.main:
        processes.barrier()
    task = task_of(dataset)
    metric = dataset.eval_metric
    y_train = labels(dataset, split["train"])
    scaler = TargetScaler(y_train) if task == "regression" else None
    out_channels = dataset.num_classes if task == "multiclass classification" else y_train.size(1)

    torch.manual_seed(args.seed)  # the same initial weights on every process
    model = build_model(args, dataset, out_channels).to(processes.device)
    num_parameters = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    if args.schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    else:
        scheduler = torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
    # different dropout masks on different processes
    torch.manual_seed(args.seed + processes.rank)

    config = dict(vars(args))
    history, best, start_epoch = [], {"epoch": None, "valid": None, "state": None}, 1
    # read by rank 0 and sent to the others: nodes need not share a file system
    checkpoint = None
    if processes.main and args.resume and checkpoint_path.exists():
        checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
    checkpoint = processes.broadcast(checkpoint)
    if checkpoint is not None:
        for key in RESUME_KEYS:
            if checkpoint["config"][key] != config[key]:
                raise ValueError(f"--resume: {checkpoint_path} was written with {key}="
                                 f"{checkpoint['config'][key]!r}, this run has {key}={config[key]!r}")
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        history, best = checkpoint["history"], checkpoint["best"]
        start_epoch = checkpoint["epoch"] + 1
        states = checkpoint["rng"]
        if len(states) == processes.world_size:
            set_rng_state(states[processes.rank])
        if processes.main:
            print(f"resuming {out_dir} after epoch {checkpoint['epoch']}", file=sys.stderr)

    if processes.distributed:
        device_ids = [processes.device.index] if processes.device.type == "cuda" else None
        trained = torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
    else:
        trained = model
    train_set = dataset[split["train"]]
    sampler = DistributedSampler(train_set, num_replicas=processes.world_size, rank=processes.rank,
                                 shuffle=True, seed=args.seed)
    loader = DataLoader(train_set, batch_size=args.batch_size, sampler=sampler, num_workers=args.num_workers)
    loss_fn = loss_function(task, metric, scaler)

    def sync_buffers():
        # batch-norm statistics drift apart after each process's last training step; evaluate (and save)
        # everywhere with those of rank 0, whose model is the one written to disk
        if processes.distributed:
            for buffer in model.buffers():
                dist.broadcast(buffer, src=0)

    commit = git_commit()

    def results(finished: bool, final=None) -> dict:
        return {
            "config": config,
            "dataset": args.dataset,
            "model": args.model,
            "task_type": task,
            "metric": metric,
            "lower_is_better": metric in LOWER_IS_BETTER,
            "num_parameters": num_parameters,
            "num_graphs": {name: len(index) for name, index in split.items()},
            "best_epoch": best["epoch"],
            "metrics": final if final is not None else (
                {"valid": history[best["epoch"] - 1][f"valid_{metric}"],
                 "test": history[best["epoch"] - 1][f"test_{metric}"]} if best["epoch"] else {}),
            "epochs_completed": len(history),
            "epoch_times_s": [row["epoch_time_s"] for row in history],
            "device": str(processes.device) + (f" ({torch.cuda.get_device_name(processes.device)})"
                                               if processes.device.type == "cuda" else ""),
            "world_size": processes.world_size,
            "torch_version": torch.__version__,
            "git_commit": commit,
            "finished": finished,
        }

    for epoch in range(start_epoch, args.epochs + 1):
        start = time.perf_counter()
        learning_rate = optimizer.param_groups[0]["lr"]
        sampler.set_epoch(epoch)
        train_loss = train_epoch(trained, loader, optimizer, loss_fn, args, processes, epoch)
        train_time = time.perf_counter() - start
        scheduler.step()
        sync_buffers()
        row = {"epoch": epoch, "train_loss": train_loss, "lr": learning_rate}
        for name in ("valid", "test"):
            row[f"{name}_{metric}"] = evaluate(dataset, *predict(model, dataset, split[name], task, scaler, args,
                                                                 processes))
        row["train_time_s"] = train_time
        row["epoch_time_s"] = time.perf_counter() - start
        history.append(row)
        if is_better(metric, row[f"valid_{metric}"], best["valid"]):
            best = {"epoch": epoch, "valid": row[f"valid_{metric}"],
                    "state": {key: value.detach().cpu().clone() for key, value in model.state_dict().items()}}
        rng = processes.all_gather(rng_state())
        if processes.main:
            tqdm.write(f"epoch {epoch:3d}  loss {train_loss:.4f}  valid {metric} {row[f'valid_{metric}']:.4f}  "
                       f"test {metric} {row[f'test_{metric}']:.4f}  ({row['epoch_time_s']:.1f} s)",
                       file=sys.stderr)
            write_csv(out_dir / "log.csv", history)
            write_plot(out_dir / "curves.png", history, metric, best["epoch"])
            write_json(out_dir / "results.json", results(finished=False))
            checkpoint = {"epoch": epoch, "config": config, "model": model.state_dict(),
                          "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                          "best": best, "history": history, "rng": rng}
            # the checkpoint is written last: once it names epoch k, every other file describes epoch k
            atomic_write(checkpoint_path, lambda tmp: torch.save(checkpoint, tmp))

    # the best-validation weights on every split (train: the graphs trained on)
    model.load_state_dict(best["state"])
    final = {name: evaluate(dataset, *predict(model, dataset, split[name], task, scaler, args, processes))
             for name in ("train", "valid", "test")}
    summary = results(finished=True, final=final)
    if processes.main:
        write_json(out_dir / "results.json", summary)
        tqdm.write(f"best epoch {best['epoch']}: " + "  ".join(f"{k} {metric} {v:.4f}" for k, v in final.items()),
                   file=sys.stderr)
    return summary


if __name__ == "__main__":
    main()
