"""Running a measurement in its own process, so that a crash, a hang or a poisoned CUDA context costs that
measurement only."""

import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path


def run_isolated(
    command: Sequence[str],
    cwd: Path,
    log: Path,
    kill_at: float,
    poll_s: float = 1.0,
    on_poll: Callable[[], None] | None = None,
) -> tuple[int | None, bool]:
    """Run ``command`` with its output in ``log``; ``(returncode, killed)``.

    The process gets its own session, so that it and everything it starts are killed together (``SIGKILL``
    to its process group) once the wall clock passes ``kill_at``, and so that a Ctrl-C meant for this
    process does not reach it half-way through a measurement (this process kills it instead).
    ``on_poll`` runs every ``poll_s`` seconds while it lives (e.g. to read the partial results it writes).
    """
    with open(log, "w") as handle:
        process = subprocess.Popen(command, cwd=cwd, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            while True:
                try:
                    process.wait(timeout=poll_s)
                    return process.returncode, False
                except subprocess.TimeoutExpired:
                    if on_poll is not None:
                        on_poll()
                    if time.time() > kill_at:
                        kill_group(process)
                        return None, True
        except BaseException:
            kill_group(process)
            raise


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL the process group that ``process`` leads, and reap it."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()
