"""Running one item: in this process under a hard cap, or in its own process killed past its cap."""

import json
import sys
import time
from pathlib import Path

import torch

from ..harness import CapReached, hard_cap, run_isolated
from .items import ITEMS
from .recorder import ItemRun, error_summary, free_memory, new_record, traceback_tail
from .report import write_atomic

ROOT = Path(__file__).resolve().parents[2]
#: Seconds an isolated item's process may run past its cap before it is killed.
KILL_GRACE_S = 10
POLL_S = 1.0


def run_item_here(name: str, device: torch.device, quick: bool, deadline: float, out: Path, on_change) -> dict:
    """Run one item in this process; its cap is enforced by the deadline and, in the main thread, SIGALRM."""
    run = ItemRun(name, device, quick, deadline, on_change)
    start = time.time()
    try:
        with hard_cap(deadline):
            run.record["status"] = ITEMS[name](run, out)
    except CapReached:
        run.record["status"] = "partial: cap" if run.record["rows"] else "skipped: cap"
    except Exception as error:
        run.record.update(status="error", error=error_summary(error), traceback=traceback_tail(error))
    finally:
        run.record["seconds"] = round(time.time() - start, 2)
        free_memory()
    on_change(run.record)
    return run.record


def run_item_isolated(name: str, device: torch.device, quick: bool, deadline: float, out: Path, on_change) -> dict:
    """Run one item in a child process (``--child``), merging its partial record as it grows; the child is
    killed ``KILL_GRACE_S`` after the deadline."""
    partial = out / "logs" / f"{name}.partial.json"
    log = out / "logs" / f"{name}.log"
    partial.unlink(missing_ok=True)
    command = [sys.executable, "-m", "benchmarks.gpu_check", "--child", name, "--device", str(device)]
    command += ["--out", str(out), "--deadline", repr(deadline)] + (["--quick"] if quick else [])
    start = time.time()
    record = new_record(name)

    def poll():
        nonlocal record
        record = read_partial(partial, record)
        on_change(record)

    returncode, killed = run_isolated(command, ROOT, log, deadline + KILL_GRACE_S, POLL_S, poll)
    record = read_partial(partial, record)
    if killed:
        record["status"] = "partial: cap" if record["rows"] else "skipped: cap"
    elif record["status"] == "running":
        record["status"] = "error"
        record["error"] = f"item process exited with status {returncode} before finishing"
        record["traceback"] = log.read_text(errors="replace").splitlines()[-12:]
    record["seconds"] = round(time.time() - start, 2)
    on_change(record)
    return record


def read_partial(path: Path, fallback: dict) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return fallback


def child_main(name: str, device: str, quick: bool, deadline: float, out: Path) -> None:
    """Run one item for an isolating parent, writing the record to ``logs/<item>.partial.json`` as it grows."""
    partial = out / "logs" / f"{name}.partial.json"
    run_item_here(
        name,
        torch.device(device),
        quick,
        deadline,
        out,
        lambda record: write_atomic(partial, json.dumps(record) + "\n"),
    )
