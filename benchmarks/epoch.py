"""The cost of a training epoch of the default pLSTM model against a baseline, side by side.

    python -m benchmarks.epoch                     # Peptides-func (pLSTM vs GCN) and BBBP (pLSTM vs GIN)
    python -m benchmarks.epoch --steps 60 --pairs bbbp
    python -m benchmarks.epoch --config benchmarks/configs/tu.json --dataset NCI1 --models plstm gin

Each pair is built from a suite config's ``cpu`` preset exactly as the suite would train it (the same
training command line, parsed by the training CLI, so the same sizes, batch size and precomputed pLSTM
structures). Both models then take optimizer steps on batches of the same seeded shuffle, alternating
one step each, so that a busy machine slows both alike; a step is timed from fetching its batch to the
optimizer update (collation, forward, backward, clipping, update). The ratio of an epoch is the ratio of
the mean step times (an epoch is the same number of steps for both). The one-off preparation of the
pLSTM structures (once per dataset, before the first epoch) is reported beside it.
"""

import argparse
import time
from pathlib import Path

import torch

from benchmarks.harness import seeded, torch_threads
from benchmarks.suite.config import load_config
from benchmarks.suite.plan import plan

CONFIGS = Path(__file__).parent / "configs"
# name: (config, dataset, pLSTM's model key, the baseline's, the most the ratio should be)
PAIRS = {
    "peptides": (CONFIGS / "lrgb.json", "peptides-func", "plstm", "gcn", 2.0),
    "bbbp": (CONFIGS / "moleculenet.json", "ogbg-molbbbp", "plstm", "gin", 1.5),
}
WARMUP_STEPS = 3


def training_args(config_path, dataset: str, model_key: str, root=None, preset: str = "cpu"):
    """The parsed training arguments of the suite's first planned run (first fold and seed) of
    ``model_key`` on ``dataset`` under ``preset``."""
    from plstm_geometric.train.cli import parse_args

    runs = plan(load_config(config_path), config_path, preset, out="unused", root=root)["runs"]
    matching = [r for r in runs if r["dataset"] == dataset and r["model_key"] == model_key]
    if not matching:
        raise SystemExit(f"{config_path}: preset {preset!r} plans no run of {model_key!r} on {dataset!r}")
    run = matching[0]
    command = run["command"]
    argv = command[command.index("--dataset") :]
    return parse_args(argv)


class Trainer:
    """One model of a pair: its data, model, optimizer and a loader over a seeded shuffle."""

    def __init__(self, args):
        from torch_geometric.loader import DataLoader

        from plstm_geometric.train.graph import build_model, make_optimizer, prepare_data
        from plstm_geometric.train.processes import Processes
        from plstm_geometric.train.tasks import loss_function

        self.args = args
        start = time.perf_counter()
        data = prepare_data(args, Processes("cpu"))
        self.prepare_s = time.perf_counter() - start
        with seeded(args.seed):
            self.model = build_model(args, data.dataset, data.out_channels)
        self.parameters = sum(p.numel() for p in self.model.parameters())
        self.optimizer = make_optimizer(self.model, args)
        self.loss_fn = loss_function(data.task, data.metric, data.scaler)
        train_set = data.graphs[data.split["train"]]
        self.steps_per_epoch = -(-len(train_set) // args.batch_size)
        generator = torch.Generator().manual_seed(args.seed)
        self.loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True, generator=generator)
        self.batches = iter(self.loader)
        self.model.train()

    def step(self) -> float:
        """Seconds of one optimizer step, from fetching its batch to the update."""
        start = time.perf_counter()
        batch = next(self.batches, None)
        if batch is None:
            self.batches = iter(self.loader)
            batch = next(self.batches)
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.model(batch), batch.y)
        loss.backward()
        if self.args.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.args.grad_clip)
        self.optimizer.step()
        return time.perf_counter() - start


def compare(
    config_path, dataset, plstm_key, baseline_key, steps: int, root=None, target=None, warmup=WARMUP_STEPS
) -> dict:
    """Mean and median step times of two models of a suite config, trained side by side, after ``warmup``
    untimed steps each."""
    trainers = {key: Trainer(training_args(config_path, dataset, key, root)) for key in (plstm_key, baseline_key)}
    times = {key: [] for key in trainers}
    for index in range(warmup + steps):
        for key, trainer in trainers.items():
            seconds = trainer.step()
            if index >= warmup:
                times[key].append(seconds)
    mean = {key: sum(t) / len(t) for key, t in times.items()}
    median = {key: sorted(t)[len(t) // 2] for key, t in times.items()}
    return {
        "dataset": dataset,
        "target": target,
        "warmup_steps": warmup,
        "models": {
            key: {
                "parameters": trainer.parameters,
                "batch_size": trainer.args.batch_size,
                "hidden": trainer.args.hidden,
                "layers": trainer.args.layers,
                "steps_per_epoch": trainer.steps_per_epoch,
                "mean_step_s": mean[key],
                "median_step_s": median[key],
                "epoch_s": mean[key] * trainer.steps_per_epoch,
                "prepare_s": trainer.prepare_s,
            }
            for key, trainer in trainers.items()
        },
        "ratio_mean": mean[plstm_key] / mean[baseline_key],
        "ratio_median": median[plstm_key] / median[baseline_key],
    }


def print_table(rows: list) -> None:
    print(
        "| dataset | model | parameters | batch | steps / epoch | mean step ms | median step ms | epoch s "
        "| data preparation s | epoch / baseline (mean, median) | target |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        for position, (key, model) in enumerate(row["models"].items()):
            ratio = f"**{row['ratio_mean']:.2f}x**, {row['ratio_median']:.2f}x" if position == 0 else ""
            target = f"at most {row['target']}x" if position == 0 and row["target"] else ""
            print(
                f"| {row['dataset']} | {key} | {model['parameters']:,} | {model['batch_size']} | "
                f"{model['steps_per_epoch']} | {model['mean_step_s'] * 1e3:.1f} | {model['median_step_s'] * 1e3:.1f} | "
                f"{model['epoch_s']:.1f} | {model['prepare_s']:.1f} | {ratio} | {target} |"
            )


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", nargs="+", choices=sorted(PAIRS), default=sorted(PAIRS, reverse=True))
    parser.add_argument("--config", help="another pair: a suite config (with --dataset and --models)")
    parser.add_argument("--dataset", help="a dataset of --config")
    parser.add_argument("--models", nargs=2, metavar=("PLSTM", "BASELINE"), help="two model keys of --config")
    parser.add_argument("--steps", type=int, default=40, help="timed steps per model (after the warm-up steps)")
    parser.add_argument(
        "--warmup-steps",
        type=int,
        default=WARMUP_STEPS,
        help=f"untimed steps per model first (default {WARMUP_STEPS}; an epoch's worth measures the steady state, "
        "after the first batches of each new size have filled the sweep's workspace)",
    )
    parser.add_argument("--root", default=None, help="dataset root folder (default: the config's)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps: expected a positive number, got {args.steps}")
    if args.warmup_steps < 0:
        parser.error(f"--warmup-steps: expected a number >= 0, got {args.warmup_steps}")
    if args.threads < 1:
        parser.error(f"--threads: expected a positive number, got {args.threads}")
    custom = (args.config, args.dataset, args.models)
    if any(custom) and not all(custom):
        parser.error("--config, --dataset and --models go together")
    return args


def main(argv=None) -> list:
    args = parse_args(argv)
    pairs = [(args.config, args.dataset, *args.models, None)] if args.config else [PAIRS[n] for n in args.pairs]
    with torch_threads(args.threads):
        rows = [compare(*pair[:4], args.steps, args.root, target=pair[4], warmup=args.warmup_steps) for pair in pairs]
    print_table(rows)
    return rows


if __name__ == "__main__":
    main()
