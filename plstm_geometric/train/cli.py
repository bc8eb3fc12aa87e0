"""The graph training command line: its flags, their checks and the defaults that depend on the model
and the dataset.

Nothing here imports torch at module level, so ``--help`` and a refused flag answer at once; the run
itself is :func:`plstm_geometric.train.graph.run`.
"""

import argparse
import os

from .arguments import (
    DEFAULT_THREADS,
    THREADS_HELP,
    device_name,
    float_in,
    int_at_least,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    thread_count,
)
from .registry import ALL_POOLS, FIRST_SWEEP, FIRST_SWEEPS, MODELS, NORMALIZE_OVER, PLSTM_POOLS, POOL_NORMS

__all__ = ["NUM_FOLDS", "PROG", "build_parser", "main", "parse_args"]

PROG = "python -m plstm_geometric.train"
DESCRIPTION = "Train a graph-level model (pLSTM or a message-passing baseline) on a graph property prediction set."
NUM_FOLDS = 10  # TUGraphDataset.get_idx_split's default
# flags that only some models take (ModelSpec.options), by argparse destination
OPTION_FLAGS = {
    "pool_norm": "--pool-norm",
    "backend": "--backend",
    "first_sweep": "--first-sweep",
    "normalize_over": "--normalize-over",
    "transition_start": "--transition-start",
}


def _per_model(name: str) -> str:
    values = {}
    for spec in MODELS.values():
        values.setdefault(getattr(spec, name), []).append(spec.name)
    return ", ".join(f"{value:g} for {' and '.join(names)}" for value, names in values.items())


def _models_with(option: str) -> str:
    return " or ".join(spec.name for spec in MODELS.values() if option in spec.options)


def _add_data_flags(parser) -> None:
    parser.add_argument(
        "--dataset",
        default="nci-tpsa",
        help="a name known to plstm_geometric.datasets.load_dataset, or one built under --root "
        "with `python -m plstm_geometric.datasets build-ogb --name NAME`",
    )
    parser.add_argument(
        "--model",
        default="plstm",
        choices=tuple(MODELS),
        help="; ".join(f"{spec.name}: {spec.description}" for spec in MODELS.values()),
    )
    parser.add_argument("--root", default="datasets", help="dataset root folder")
    parser.add_argument(
        "--fold",
        type=int_at_least(0),
        default=None,
        help=f"cross-validation fold (0 to {NUM_FOLDS - 1}) of a TU dataset; TU datasets only (default there: 0)",
    )


def _add_schedule_flags(parser) -> None:
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


def _add_model_flags(parser) -> None:
    parser.add_argument(
        "--hidden", type=positive_int, default=None, help="hidden channels (default: " + _per_model("hidden") + ")"
    )
    parser.add_argument(
        "--layers", type=positive_int, default=None, help="layers (default: " + _per_model("layers") + ")"
    )
    parser.add_argument("--heads", type=positive_int, default=4, help="pLSTM heads")
    parser.add_argument(
        "--dropout",
        type=float_in(0.0, 1.0, high_open=True),
        default=None,
        help="dropout (default: " + _per_model("dropout") + ")",
    )
    parser.add_argument(
        "--pool",
        default=None,
        choices=ALL_POOLS,
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
    parser.add_argument(
        "--first-sweep",
        choices=FIRST_SWEEPS,
        default=None,
        help="pLSTM only: the direction of the first block, the blocks alternating from there (default: forward)",
    )
    parser.add_argument(
        "--normalize-over",
        choices=NORMALIZE_OVER,
        default=None,
        help="pLSTM only: the P-mode transitions are normalised over the line edges leaving an edge "
        "('outgoing', the default) or entering it ('incoming')",
    )
    parser.add_argument(
        "--transition-start",
        type=float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        default=None,
        help="pLSTM only: the range over which the heads' transitions start (default: 0.9 0.999)",
    )
    parser.add_argument(
        "--backend",
        default=None,
        help="pLSTM only: the plstm_dag backend of every layer (plstm_geometric.functional.dag.BACKENDS; "
        "default: auto, which picks per structure); results agree to rounding",
    )


def _add_run_flags(parser) -> None:
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description=DESCRIPTION, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    for add in (_add_data_flags, _add_schedule_flags, _add_model_flags, _add_run_flags):
        add(parser)
    return parser


def resolve_dataset(parser, args) -> None:
    """Replaces ``args.dataset`` by the dataset's one canonical name (a folder name, another case or ``_``
    for ``-`` name the same dataset), so that its defaults, run folder and results are those of that name."""
    from plstm_geometric.datasets import resolve_dataset_name  # imports torch: after the flags are checked

    try:
        args.dataset = resolve_dataset_name(args.dataset, args.root)
    except (TypeError, ValueError) as error:
        parser.error(f"--dataset: {error}")


def parse_args(argv=None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.warmup_epochs and (args.schedule != "cosine" or args.warmup_epochs >= args.epochs):
        parser.error(
            f"--warmup-epochs: expected fewer than --epochs ({args.epochs}) with --schedule cosine, "
            f"got {args.warmup_epochs} with --schedule {args.schedule}"
        )
    spec = MODELS[args.model]
    for option in OPTION_FLAGS:
        if getattr(args, option) is not None and option not in spec.options:
            parser.error(
                f"{OPTION_FLAGS[option]}: only --model {_models_with(option)} takes it, got --model {args.model}"
            )
    if args.pool is not None and args.pool not in spec.pools:
        parser.error(f"--pool: expected {' or '.join(spec.pools)} with --model {args.model}, got {args.pool}")
    for name in ("hidden", "layers", "dropout"):
        if getattr(args, name) is None:
            setattr(args, name, getattr(spec, name))
    if "heads" in spec.options and args.hidden % args.heads:
        parser.error(
            f"--heads: expected a divisor of --hidden ({args.hidden}), got {args.heads}; pass --heads 4 "
            "or --hidden divisible by --heads"
        )
    if "pool_norm" in spec.options and args.pool_norm is None:
        args.pool_norm = "batch"
    if "first_sweep" in spec.options and args.first_sweep is None:
        # recorded as resolved: a run record says which way its first block swept whatever the default
        args.first_sweep = FIRST_SWEEP
    if args.transition_start is not None:
        low, high = args.transition_start
        # both modes' bound: a transition of 1 needs an infinite pre-activation
        if not 0 <= low <= high < 1:
            parser.error(f"--transition-start: expected 0 <= LOW <= HIGH < 1, got {low:g} {high:g}")
        args.transition_start = (low, high)
    if args.backend is not None:
        from plstm_geometric.functional.dag import BACKENDS  # imported only when a backend is named

        if args.backend not in BACKENDS:
            parser.error(f"--backend: expected one of {', '.join(BACKENDS)}, got {args.backend}")
    resolve_dataset(parser, args)
    if args.fold is not None:
        from plstm_geometric.datasets.tu import is_tu_name  # imports torch: only when a fold is asked for

        if not is_tu_name(args.dataset, args.root):
            parser.error(f"--fold: only TU datasets have folds, got --dataset {args.dataset}")
        if args.fold >= NUM_FOLDS:
            parser.error(f"--fold: expected 0 to {NUM_FOLDS - 1}, got {args.fold}")
    if args.pool is None:
        # TPSA is a sum of atom contributions: a sum readout fits it (valid RMSE 21 vs 34 with mean, 8 epochs)
        args.pool = "sum" if args.dataset == "nci-tpsa" else "mean"
    if args.out is None:
        fold = "" if args.fold is None else f"-fold{args.fold}"
        args.out = os.path.join("runs", f"{args.dataset}{fold}-{args.model}-{args.seed}")
    return args


HUGE_PAGES_VARIABLE = "THP_MEM_ALLOC_ENABLE"


def enable_huge_pages() -> None:
    """Ask torch's CPU allocator for transparent huge pages (its ``THP_MEM_ALLOC_ENABLE``), unless the
    environment says otherwise. Read once, at torch's first allocation, so this must run before torch
    allocates. The pLSTM sweep allocates states of tens of MB per layer and step; with 4 KB pages their
    first touch costs more than the sweep (64 peptides: the compiled forward 25.8 -> 10.4 ms, a training
    step of the Peptides-func model 0.80 -> 0.51 s and of its GCN baseline 0.39 -> 0.28 s). It applies to
    this training process only."""
    os.environ.setdefault(HUGE_PAGES_VARIABLE, "1")


def main(argv=None) -> int:
    """``python -m plstm_geometric.train`` (console script ``plstm-train``): exit status 0, 1 on a run error,
    2 on bad flags. The flags are checked before the training code (and torch) is imported, so ``--help``
    and a refused flag answer at once."""
    enable_huge_pages()
    args = parse_args(argv)  # once: resolving --dataset reads the data root
    from .errors import run_cli
    from .graph import run_args

    return run_cli(lambda _: run_args(args), argv, PROG)
