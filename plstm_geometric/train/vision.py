"""Train and evaluate a vision model on the arrow-pointing extrapolation (APE) task.

    python -m plstm_geometric.train.vision --task ape --model vit --image-size 192 --test-sizes 192 384 \\
        --train-samples 50000 --test-samples 2000 --epochs 20 --batch-size 64 --out runs/ape-vit

Training uses AdamW with a linear warmup followed by a cosine decay to zero, stepped per batch. The model
is trained at ``--image-size`` and tested on fresh samples at every ``--test-sizes`` entry; the objects keep
their pixel size, so larger test images probe extrapolation to longer-range relations. Training and test
samples come from different APE streams (seeds ``2 * seed`` and ``2 * seed + 1``), so they never coincide.

``--out`` is the run folder (default ``runs/ape-<model>-<seed>``): ``results.json`` goes into it, and it is
locked while the run lives. A run whose training loss becomes NaN or infinite stops with an error.
"""

import argparse
import os
import sys
import time

import torch
import torch.nn.functional as F
from tqdm import tqdm

from plstm_geometric.datasets.ape import APEDataset

from .arguments import (
    DEFAULT_THREADS,
    THREADS_HELP,
    device_name,
    float_in,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    thread_count,
)
from .errors import Diverged, run_cli
from .files import RunFolder, git_commit
from .record import make_record, write_record
from .runs import device_description, resolve_device, set_threads, warmup_cosine

PROG = "python -m plstm_geometric.train.vision"

TASKS = ("ape",)
MODELS = ("plstm", "vit")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--task", choices=TASKS, default="ape", help="the image task")
    parser.add_argument("--model", choices=MODELS, default="vit", help="pLSTM-Vis or the ViT baseline")
    parser.add_argument("--image-size", type=positive_int, default=192, help="training image side in pixels")
    parser.add_argument("--test-sizes", type=positive_int, nargs="+", default=[192, 384], help="test image sides")
    parser.add_argument("--train-samples", type=positive_int, default=50000, help="training images (one epoch)")
    parser.add_argument("--test-samples", type=positive_int, default=2000, help="per test size")
    parser.add_argument("--epochs", type=positive_int, default=20, help="passes over the training images")
    parser.add_argument("--batch-size", type=positive_int, default=64, help="images per step")
    parser.add_argument("--lr", type=positive_float, default=1e-3, help="peak learning rate")
    parser.add_argument("--weight-decay", type=non_negative_float, default=0.05, help="AdamW weight decay")
    parser.add_argument(
        "--warmup-fraction",
        type=float_in(0.0, 1.0, high_open=True),
        default=0.05,
        help="share of steps in linear warmup",
    )
    parser.add_argument("--patch-size", type=positive_int, default=16, help="patch side in pixels")
    parser.add_argument("--dim", type=positive_int, default=192, help="embedding width")
    parser.add_argument("--heads", type=positive_int, default=3, help="heads per layer")
    parser.add_argument("--depth", type=positive_int, default=6, help="layers")
    parser.add_argument("--device", type=device_name, default="auto", help="'auto' picks cuda when available")
    parser.add_argument("--threads", type=thread_count, default=DEFAULT_THREADS, help=THREADS_HELP)
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of weights, data order and APE streams")
    parser.add_argument(
        "--out",
        default=None,
        help="run folder (default: runs/ape-<model>-<seed>; none when "
        "train_vision is called with a config without 'out')",
    )
    parser.add_argument("--num-workers", type=non_negative_int, default=0, help="DataLoader worker processes")
    return parser


def resolve_config(args_or_config) -> argparse.Namespace:
    """Defaults of the command line, overridden by a Namespace or a dict with the same (underscore) keys."""
    config = vars(build_parser().parse_args([]))
    given = vars(args_or_config) if isinstance(args_or_config, argparse.Namespace) else args_or_config
    if not isinstance(given, dict):
        raise TypeError(f"args_or_config: expected an argparse.Namespace or a dict, got {type(given).__name__}")
    unknown = sorted(set(given) - set(config))
    if unknown:
        raise ValueError(f"args_or_config: unknown option(s) {unknown}; known: {sorted(config)}")
    config.update(given)
    if config["task"] not in TASKS:
        raise ValueError(f"task: expected one of {TASKS}, got {config['task']!r}")
    if config["model"] not in MODELS:
        raise ValueError(f"model: expected one of {MODELS}, got {config['model']!r}")
    for name in ("train_samples", "test_samples", "epochs", "batch_size"):
        if config[name] < 1:
            raise ValueError(f"{name}: expected a positive int, got {config[name]}")
    if not 0.0 <= config["warmup_fraction"] < 1.0:
        raise ValueError(f"warmup_fraction: expected a value in [0, 1), got {config['warmup_fraction']}")
    config["test_sizes"] = [int(size) for size in config["test_sizes"]]
    return argparse.Namespace(**config)


def build_model(config: argparse.Namespace) -> torch.nn.Module:
    if config.model == "vit":
        from plstm_geometric.models import ViT as model_class
    else:
        # Imported here so that the ViT baseline works without the pLSTM vision model.
        from plstm_geometric.models import PLSTMVis as model_class
    return model_class(
        config.image_size, config.patch_size, 3, 2, dim=config.dim, heads=config.heads, depth=config.depth
    )


@torch.no_grad()
def evaluate(model, loader, device) -> dict:
    model.eval()
    correct, loss, count = 0, 0.0, 0
    for images, labels in loader:
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        logits = model(images)
        loss += F.cross_entropy(logits, labels, reduction="sum").item()
        correct += (logits.argmax(dim=1) == labels).sum().item()
        count += labels.numel()
    return dict(accuracy=correct / count, loss=loss / count)


def train_vision(args_or_config) -> dict:
    """Train on APE at ``image_size`` and test at every ``test_sizes`` entry; returns the results dict
    (also written to ``<out>/results.json`` when ``out`` is given: the run folder, locked while training)."""
    config = resolve_config(args_or_config)
    if config.out is None:
        return _train(config, None)
    with RunFolder(config.out) as folder:
        return _train(config, folder)


def _loaders(config: argparse.Namespace, device) -> tuple:
    """The training loader (shuffled with the run's seed) and one test loader per test image size."""
    train_set = APEDataset(config.train_samples, image_size=config.image_size, seed=2 * config.seed)
    loader_options = dict(
        batch_size=config.batch_size, num_workers=config.num_workers, pin_memory=device.type == "cuda"
    )
    train_loader = torch.utils.data.DataLoader(
        train_set,
        shuffle=True,
        drop_last=len(train_set) > config.batch_size,
        generator=torch.Generator().manual_seed(config.seed),
        **loader_options,
    )
    test_loaders = {
        size: torch.utils.data.DataLoader(
            APEDataset(config.test_samples, image_size=size, seed=2 * config.seed + 1), **loader_options
        )
        for size in config.test_sizes
    }
    return train_loader, test_loaders


def _train(config: argparse.Namespace, folder) -> dict:
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)

    train_loader, test_loaders = _loaders(config, device)

    model = build_model(config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    total_steps = config.epochs * len(train_loader)
    warmup_steps = round(config.warmup_fraction * total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine(step, total_steps, warmup_steps)
    )

    train_loss, train_accuracy, epoch_times = [], [], []
    for epoch in range(config.epochs):
        model.train()
        start = time.perf_counter()
        loss_sum, correct, count = 0.0, 0, 0
        progress = tqdm(train_loader, desc=f"epoch {epoch + 1}/{config.epochs}", leave=False, disable=None)
        for images, labels in progress:
            images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            logits = model(images)
            loss = F.cross_entropy(logits, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if not torch.isfinite(loss):
                raise Diverged(f"epoch {epoch + 1}: training loss {loss.item()}: the run diverged; lower --lr")
            optimizer.step()
            scheduler.step()
            loss_sum += loss.item() * labels.numel()
            correct += (logits.argmax(dim=1) == labels).sum().item()
            count += labels.numel()
            progress.set_postfix(loss=f"{loss_sum / count:.4f}", acc=f"{correct / count:.3f}")
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        epoch_times.append(time.perf_counter() - start)
        train_loss.append(loss_sum / count)
        train_accuracy.append(correct / count)
        tqdm.write(
            f"epoch {epoch + 1}: loss {train_loss[-1]:.4f} acc {train_accuracy[-1]:.4f} ({epoch_times[-1]:.1f} s)"
        )

    tests = {str(size): evaluate(model, loader, device) for size, loader in test_loaders.items()}
    for size, metrics in tests.items():
        tqdm.write(f"test {size} px: accuracy {metrics['accuracy']:.4f} loss {metrics['loss']:.4f}")
    record = make_record(
        "vision",
        vars(config),
        finished=True,
        metric="accuracy",
        lower_is_better=False,
        num_parameters=sum(parameter.numel() for parameter in model.parameters()),
        device=device_description(device),
        torch_version=torch.__version__,
        git_commit=git_commit(),
        extra=dict(
            accuracy={size: metrics["accuracy"] for size, metrics in tests.items()},
            test_loss={size: metrics["loss"] for size, metrics in tests.items()},
            train_loss=train_loss,
            train_accuracy=train_accuracy,
            epoch_times=epoch_times,
            model=repr(model),
        ),
    )
    if folder is not None:
        write_record(folder.path, record)
    return record


def run(argv=None) -> dict:
    """The command line's run: the results dict, also written to ``<out>/results.json``."""
    args = build_parser().parse_args(argv)
    if args.out is None:
        args.out = os.path.join("runs", f"{args.task}-{args.model}-{args.seed}")
    set_threads(args.threads)
    return train_vision(args)


def main(argv=None) -> int:
    """The command line (console script ``plstm-train-vision``): exit status 0, 1 on a run error, 2 on bad
    flags."""
    return run_cli(run, argv, PROG)


if __name__ == "__main__":
    sys.exit(main())
