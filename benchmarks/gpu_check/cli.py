"""The command line: options, caps and budget, and the loop over the items."""

import argparse
import time
from pathlib import Path

import torch

from ..harness import torch_threads
from .items import CAPS
from .recorder import new_record
from .report import Report, header
from .runner import child_main, run_item_here, run_item_isolated

QUICK_CAP_S = 30
BUDGET_S = 460
QUICK_BUDGET_S = 150
#: An item is not started with less time than this left in the run's budget.
MIN_ITEM_S = 1.0


def parse_caps(pairs, quick: bool) -> dict:
    """Each item's cap: ``CAPS`` (``QUICK_CAP_S`` on quick runs), changed by ``--cap NAME=SECONDS`` pairs."""
    caps = {name: QUICK_CAP_S if quick else cap for name, cap in CAPS.items()}
    for pair in pairs or ():
        name, _, seconds = pair.partition("=")
        if name not in CAPS:
            raise ValueError(f"--cap: expected NAME=SECONDS with NAME one of {sorted(CAPS)}, got {pair!r}")
        try:
            caps[name] = float(seconds)
        except ValueError:
            raise ValueError(f"--cap: expected a number of seconds, got {pair!r}") from None
    return caps


def parse_args(argv, description: str):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.gpu_check",
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for gpu_check.json, gpu_check.md, logs/")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat (the CI smoke run)")
    parser.add_argument("--items", nargs="+", choices=list(CAPS), default=list(CAPS), help="items to run, in order")
    parser.add_argument("--cap", action="append", metavar="NAME=SECONDS", help="change one item's cap")
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        help=f"seconds for the whole run (default {BUDGET_S}, quick {QUICK_BUDGET_S})",
    )
    isolation = parser.add_mutually_exclusive_group()
    isolation.add_argument(
        "--isolate",
        dest="isolate",
        action="store_true",
        default=None,
        help="run each item in its own process (default on CUDA)",
    )
    isolation.add_argument(
        "--no-isolate", dest="isolate", action="store_false", help="run every item in this process (default on CPU)"
    )
    parser.add_argument("--commit", default=None, help="the commit to record (default: git rev-parse HEAD)")
    parser.add_argument("--child", choices=list(CAPS), help=argparse.SUPPRESS)
    parser.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None, description: str = "") -> dict:
    """Run the check; returns the report's data (empty in a ``--child`` process)."""
    args = parse_args(argv, description)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device: expected a device torch can use, got 'cuda' (torch.cuda.is_available() is False)")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "logs").mkdir(exist_ok=True)
    # Quick CPU runs share CI machines, where one thread avoids OpenMP wake-up stalls; restored on return, so
    # that a caller in the same process (a test) times with its own setting.
    with torch_threads(1 if args.quick and args.device == "cpu" else None):
        if args.child:
            child_main(args.child, args.device, args.quick, args.deadline, args.out)
            return {}
        return run_items(args)


def run_items(args) -> dict:
    device = torch.device(args.device)
    caps = parse_caps(args.cap, args.quick)
    budget = args.budget if args.budget is not None else (QUICK_BUDGET_S if args.quick else BUDGET_S)
    isolate = device.type == "cuda" if args.isolate is None else args.isolate
    report = Report(args.out, header(device, args.quick, args.commit, caps, budget, isolate), args.items)
    report.flush()
    end = time.time() + budget
    runner = run_item_isolated if isolate else run_item_here
    for name in args.items:
        deadline = min(time.time() + caps[name], end)
        if deadline - time.time() < MIN_ITEM_S:
            error = "the run's budget was spent before this item"
            report.update(new_record(name, "skipped: cap", seconds=0, error=error))
            continue
        try:
            record = runner(name, device, args.quick, deadline, args.out, report.update)
        except KeyboardInterrupt:
            report.update({**report.item(name), "status": "interrupted"})
            raise
        print(f"{name}: {record['status']} ({record['seconds']} s, {len(record['rows'])} rows)", flush=True)
    print(f"wrote {args.out / 'gpu_check.json'} and {args.out / 'gpu_check.md'}")
    return report.data
