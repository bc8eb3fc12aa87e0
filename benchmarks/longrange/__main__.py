"""Accuracy against DAG depth: pLSTM and message-passing baselines on the long-range tasks.

    python -m benchmarks.longrange run --preset cpu --out results/longrange-cpu     # train (resumable)
    python -m benchmarks.longrange render results/longrange-cpu                     # table + figure

``run`` trains every (task, family, depth, model, seed) of the preset in ``benchmarks/configs/longrange.json``
that has no finished record in ``OUT/runs/`` yet, so rerunning the same command resumes an interrupted
benchmark. ``render`` writes ``OUT/longrange.md`` (test accuracy by depth, with parameter counts, steps
and wall time) and ``OUT/longrange.png`` (accuracy against depth, one panel per task and family).
"""

import argparse
import sys
from pathlib import Path

from .plan import load_config, plan_runs
from .report import render
from .runner import run_plan

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "longrange.json"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.longrange", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="train every missing run of a preset")
    run.add_argument("--config", type=Path, default=CONFIG)
    run.add_argument("--preset", default="cpu")
    run.add_argument("--out", type=Path, required=True, help="results folder (runs/ and the report go here)")
    run.add_argument("--only", nargs="*", default=None, help="restrict to these model names")
    run.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    show = commands.add_parser("render", help="write the table and figure of a results folder")
    show.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    if args.command == "run":
        if args.threads < 1 or args.threads > 256:
            parser.error(f"--threads: expected 1 to 256, got {args.threads}")
        config = load_config(args.config)
        plan = plan_runs(config, args.preset, args.only)
        run_plan(plan, args.out, args.threads)
        print(render(args.out))
    else:
        print(render(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
