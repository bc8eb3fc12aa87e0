"""``python -m benchmarks.suite``: run a suite config, or ``render`` finished results folders."""

import argparse
import sys
from pathlib import Path

from plstm_geometric.train.record import run_state

from .config import SuiteError, load_config
from .plan import plan
from .runner import execute

DESCRIPTION = "Rerun a whole results table: datasets x models x (folds or seeds), one training subprocess per run."


def run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.suite",
        description=DESCRIPTION,
        epilog="python -m benchmarks.suite render RESULTS_DIR... prints the markdown of finished results folders.",
    )
    parser.add_argument("config", help="suite config (JSON), e.g. benchmarks/configs/tu.json")
    parser.add_argument("--preset", default=None, help="a preset of the config (e.g. cpu, full)")
    parser.add_argument("--out", default=None, help="results folder (default: results/<name>-<preset>)")
    parser.add_argument("--root", default=None, help="data root (default: the config's root, else datasets)")
    parser.add_argument("--jobs", type=int, default=None, help="runs at once (default: the preset's jobs, else 1)")
    parser.add_argument("--threads", type=int, default=None, help="--threads of every run (overrides the config)")
    parser.add_argument("--max-runs", type=int, default=None, help="start at most this many runs, then stop")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and each run's state, run nothing")
    parser.add_argument(
        "--allow-download",
        action="store_true",
        help="do not require the data under the root (the training CLI may download it)",
    )
    parser.add_argument(
        "--rerun-changed",
        action="store_true",
        help="run again, from scratch, runs whose folder holds another configuration",
    )
    parser.add_argument("--no-progress", action="store_true")
    return parser


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "render":
            parser = argparse.ArgumentParser(
                prog="python -m benchmarks.suite render", description="Markdown of suite results folders, to stdout."
            )
            parser.add_argument("results", nargs="+", help="results folders written by the suite")
            args = parser.parse_args(argv[1:])
            from .report import render

            print("\n".join(render(folder) for folder in args.results), end="")
            return 0
        args = run_parser().parse_args(argv)
        for name in ("jobs", "threads", "max_runs"):
            if getattr(args, name) is not None and getattr(args, name) < 1:
                raise SuiteError(f"--{name.replace('_', '-')}: expected a positive int, got {getattr(args, name)}")
        config = load_config(args.config)
        the_plan = plan(config, args.config, args.preset, args.out, args.root, args.allow_download, args.threads)
        if args.dry_run:
            out = Path(the_plan["out"])
            for run in the_plan["runs"]:
                state, detail = run_state(out / run["run_dir"], run["expected"])
                print(f"[{state}{': ' + detail if detail else ''}] {' '.join(run['command'])}")
            print(f"{len(the_plan['runs'])} runs into {out}", file=sys.stderr)
            return 0
        collected = execute(the_plan, args.jobs, args.max_runs, args.rerun_changed, not args.no_progress)
    except SuiteError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # Ctrl-C or SIGTERM: the runner has stopped the running runs (their checkpoints stay) and written
        # the tables of what finished; a traceback would only hide that
        print(
            "stopped: the running runs were stopped, their checkpoints kept; the same command resumes", file=sys.stderr
        )
        return 130
    finished = sum(r["status"] == "done" for r in collected["rows"])
    print(
        f"{finished}/{len(collected['rows'])} runs finished, {len(collected['failed'])} failed in this call; "
        f"table in {Path(the_plan['out']) / 'results.md'}",
        file=sys.stderr,
    )
    return 1 if collected["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
