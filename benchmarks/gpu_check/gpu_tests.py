"""Item ``gpu_tests``: the test suite's GPU tests (``python -m pytest -m gpu``) as a subprocess."""

import re
import subprocess
import sys
from pathlib import Path

from .recorder import ItemRun

ROOT = Path(__file__).resolve().parents[2]
COUNTED = ("passed", "failed", "error", "skipped", "deselected")


def pytest_counts(summary: str) -> dict:
    """``{"passed": 18, "failed": 1, "error": 2, ...}`` from pytest's last line."""
    found = re.findall(r"(\d+) (passed|failed|errors?|skipped|deselected|xfailed|xpassed)", summary)
    return {word if word != "errors" else "error": int(number) for number, word in found}


def item_gpu_tests(run: ItemRun, out: Path) -> str:
    if not run.cuda:
        return "skipped: no CUDA"
    log = out / "logs" / "gpu_tests_pytest.log"
    log.parent.mkdir(exist_ok=True)
    command = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider"]
    command += ["--continue-on-collection-errors", "tests"]
    run.info("command", " ".join(command[1:]))
    status = "ok"
    with open(log, "w") as handle:
        try:
            returncode = subprocess.run(
                command,
                check=False,
                cwd=ROOT,
                stdout=handle,
                stderr=subprocess.STDOUT,
                timeout=max(run.time_left() - 5, 1),
            ).returncode
        except subprocess.TimeoutExpired:
            returncode, status = None, "partial: cap"
    text = log.read_text(errors="replace")
    run.info("returncode", returncode)
    run.info("output_tail", text[-4000:])
    summary = text.strip().splitlines()[-1] if text.strip() else ""
    counts = pytest_counts(summary)
    for key in COUNTED:
        run.add("pytest -m gpu", "pytest", key, counts.get(key, 0), "tests")
    if status != "ok":
        return status
    if returncode == 0:
        return "ok"
    if counts.get("failed") or counts.get("error"):
        return "tests failed"
    # pytest missing, a usage error, no test collected: not a test result.
    run.record["error"] = f"pytest exited with status {returncode}: {summary[-300:]}"
    return "error"
