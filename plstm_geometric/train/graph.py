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

import sys
from dataclasses import dataclass

import torch
from torch.utils.data.distributed import DistributedSampler
from torch_geometric.loader import DataLoader
from tqdm.auto import tqdm

from plstm_geometric.datasets import load_dataset
from plstm_geometric.datasets.safe_load import DatasetFileError
from plstm_geometric.transforms import PreparePLSTM

from . import registry
from .cli import PROG, parse_args
from .errors import RunError, run_cli
from .files import RunFolder, git_commit, write_csv
from .loop import State, check_finite, predict, resume, run_epoch
from .plot import write_plot
from .processes import Processes
from .record import RecordError, make_record, read_record, write_record
from .runs import device_description, rng_state, save_checkpoint, seed_everything, set_threads
from .tasks import LOWER_IS_BETTER, TargetScaler, evaluate, is_better, labels, loss_function, task_of

__all__ = ["build_model", "main", "parse_args", "prepare_data", "run", "run_args", "train"]


# ---------------------------------------------------------------------------------------------- data
def load(args):
    """The dataset and its index splits (subsampled as asked)."""
    try:
        dataset = load_dataset(args.dataset, args.root)
        split = dataset.get_idx_split() if args.fold is None else dataset.get_idx_split(fold=args.fold)
    except (ValueError, TypeError, FileNotFoundError, DatasetFileError) as error:
        # a refused or damaged file names itself and the way to rebuild it: the user's problem, not a bug
        raise RunError(f"--dataset {args.dataset}: {error}") from error
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


# ---------------------------------------------------------------------------------------------- model
def build_model(args, dataset, out_channels: int) -> torch.nn.Module:
    """The ``--model`` of ``args`` (see :mod:`~plstm_geometric.train.registry`) sized for ``dataset``: OGB's
    atom and bond encoders for integer features, linear encoders otherwise."""
    encoder = "ogb" if dataset[0].x.dtype == torch.long else "linear"
    in_channels = None if encoder == "ogb" else dataset.num_node_features
    edge_attr = dataset[0].edge_attr
    edge_dim = None if encoder == "ogb" or edge_attr is None else edge_attr.view(len(edge_attr), -1).size(1)
    spec = registry.model_spec(args.model)
    options = {name: getattr(args, name) for name in spec.options}
    return registry.build_model(
        args.model,
        args.hidden,
        out_channels,
        args.layers,
        dropout=args.dropout,
        pool=args.pool,
        encoder=encoder,
        in_channels=in_channels,
        edge_dim=edge_dim,
        **options,
    )


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
    sweeps the model's blocks run), else the dataset itself."""
    if not registry.model_spec(args.model).prepared:
        return dataset
    from plstm_geometric.models.graph_model import FIRST_SWEEP, sweep_directions

    directions = sweep_directions(args.layers, getattr(args, "first_sweep", None) or FIRST_SWEEP)
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


def results(args, config, data: Data, state: State, processes, num_parameters, commit, final=None) -> dict:
    """The run record (``results.json``, :mod:`~plstm_geometric.train.record`) of the run so far."""
    best_epoch, metric = state.best["epoch"], data.metric
    if final is None and best_epoch is not None:
        row = state.history[best_epoch - 1]
        final = {"valid": row[f"valid_{metric}"], "test": row[f"test_{metric}"]}
    return make_record(
        "graph",
        config,
        finished=final is not None and len(final) == 3,
        dataset=args.dataset,
        model=args.model,
        task_type=data.task,
        metric=metric,
        lower_is_better=metric in LOWER_IS_BETTER,
        num_parameters=num_parameters,
        num_graphs={name: len(index) for name, index in data.split.items()},
        best_epoch=best_epoch,
        metrics=final or {},
        epochs_completed=state.epochs_done,
        epoch_times_s=[row["epoch_time_s"] for row in state.history],
        device=device_description(processes.device),
        world_size=processes.world_size,
        torch_version=torch.__version__,
        git_commit=commit,
    )


def make_optimizer(model: torch.nn.Module, args) -> torch.optim.Optimizer:
    """AdamW over the model's parameters with the run's learning rate and weight decay. The multi-tensor
    form (``foreach=True``, torch's default on CUDA only) also on CPU: one kernel per update step for all
    parameter tensors instead of about ten per tensor (the default pLSTM model has about a hundred), the
    same arithmetic."""
    return torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay, foreach=True)


def train(args, processes, folder: RunFolder) -> dict:
    """The whole run in ``folder``; returns the results dict."""
    seed_everything(args.seed)
    data = prepare_data(args, processes)
    torch.manual_seed(args.seed)  # the same initial weights on every process
    model = build_model(args, data.dataset, data.out_channels).to(processes.device)
    num_parameters = sum(p.numel() for p in model.parameters())
    optimizer = make_optimizer(model, args)
    torch.manual_seed(args.seed + processes.rank)  # different dropout masks on different processes
    config = dict(vars(args))
    if processes.main:
        print_header(args, data, num_parameters, processes, folder)
    build_sweep_loops(args, processes)
    state = resume(args, config, folder, processes, model, optimizer, data.metric)

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
            write_record(folder.path, results(args, config, data, state, processes, num_parameters, commit))
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
        write_record(folder.path, summary)
        # the result line goes to stdout with the header; progress and the per-epoch log go to stderr
        scores = "  ".join(f"{name} {data.metric} {value:.4f}" for name, value in final.items())
        print(f"best epoch {state.best['epoch']}: {scores}", flush=True)
        print(f"results: {folder / 'results.json'}", flush=True)
    return summary


def print_header(args, data: Data, num_parameters: int, processes, folder: RunFolder) -> None:
    """What a run is about to do, on stdout: the data, the model, where it runs and where its files go."""
    sizes = "/".join(str(len(data.split[name])) for name in ("train", "valid", "test"))
    fold = "" if args.fold is None else f" fold {args.fold}"
    print(f"dataset {args.dataset}{fold}: train/valid/test {sizes} graphs, {data.task}, metric {data.metric}")
    print(
        f"model {args.model}: {num_parameters:,} parameters (hidden {args.hidden}, {args.layers} layers, "
        f"pool {args.pool}); {args.epochs} epochs of batch {args.batch_size}"
    )
    processes_note = f", {processes.world_size} processes" if processes.world_size > 1 else ""
    print(f"device {device_description(processes.device)}, {args.threads} thread(s){processes_note}")
    print(f"run folder {folder.path}", flush=True)


def build_sweep_loops(args, processes) -> None:
    """pLSTM on CPU runs the C++ level sweep (``backend="auto"`` or ``"compiled"``): build it before the
    first epoch, saying so, rather than pausing the first batch silently for a minute."""
    if args.model != "plstm" or processes.device.type != "cpu" or args.backend not in (None, "auto", "compiled"):
        return
    from plstm_geometric.functional.dag import compiled

    if not compiled.compile_allowed() or compiled.is_built():
        return
    if processes.main:
        print("building the C++ level sweep (first use on this machine, about a minute)", flush=True)
    compiled.build_extension()


# ---------------------------------------------------------------------------------------------- entry points
def run(argv=None) -> dict:
    """Runs the training described by the command-line arguments ``argv`` and returns the results dict
    (the content of ``results.json``); a :class:`~plstm_geometric.train.errors.RunError` when it cannot."""
    return run_args(parse_args(argv))


def run_args(args) -> dict:
    """:func:`run` for arguments already parsed by :func:`~plstm_geometric.train.cli.parse_args`."""
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
    try:
        record = read_record(folder.path)
    except RecordError:
        record = None  # a damaged record describes no finished run: the new run replaces it
    if record is not None and record["finished"]:
        raise RunError(
            f"--out: {folder.path} holds a finished run ({folder / 'results.json'}); pass --resume to extend it "
            "(with a larger --epochs), --overwrite to replace it, or choose another --out"
        )


def main(argv=None) -> int:
    """The command line (console script ``plstm-train``): exit status 0, 1 on a run error, 2 on bad flags."""
    return run_cli(run, argv, PROG)


if __name__ == "__main__":
    sys.exit(main())
