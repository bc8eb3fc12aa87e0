"""Run folders and the files in them: locked for the run's lifetime, every file written atomically.

A run folder (``--out``) belongs to one run at a time: :class:`RunFolder` holds an exclusive lock on
``<out>/.lock`` while the run lives (released by the kernel when the process ends, killed or not), and
every file in it is written to a temporary name and renamed into place, so a reader never sees half a
file. Nothing here imports torch: the benchmarks and the suite use the same helpers.
"""

import csv
import fcntl
import json
import math
import os
import subprocess
from pathlib import Path

from .errors import RunError


class RunFolder:
    """The folder of one run, locked for as long as the run lives (see the module docstring).

    Use as a context manager; :meth:`lock` raises a :class:`RunError` when another process holds it.
    """

    LOCK_NAME = ".lock"

    def __init__(self, path, lock: bool = True):
        self.path = Path(path)
        self._lock_file = None
        self._want_lock = lock

    def __enter__(self) -> "RunFolder":
        if self._want_lock:
            self.lock()
        return self

    def __exit__(self, *exc) -> None:
        self.unlock()

    def lock(self) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise RunError(f"--out: cannot create the run folder {self.path} ({error})") from error
        if not self.path.is_dir():
            raise RunError(f"--out: {self.path} exists and is not a folder")
        lock_path = self.path / self.LOCK_NAME
        try:
            # never through a symbolic link: the lock file is written, and must stay inside the run folder
            descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as error:
            raise RunError(
                f"--out: cannot open the lock file {lock_path} ({error.strerror}; a symbolic link there is "
                "refused); remove it or choose another --out"
            ) from error
        file = os.fdopen(descriptor, "r+")
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.close()
            raise RunError(
                f"--out: {self.path} is in use by another training run (it holds {lock_path}); wait "
                "for that run to end or choose another --out"
            ) from None
        file.seek(0)
        file.truncate()
        file.write(f"{os.getpid()}\n")
        file.flush()
        self._lock_file = file

    def unlock(self) -> None:
        if self._lock_file is not None:
            # removed while still held, so that no other run can have locked this file in between
            (self.path / self.LOCK_NAME).unlink(missing_ok=True)
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    def __truediv__(self, name: str) -> Path:
        return self.path / name


def atomic_write(path: Path, write) -> None:
    """``write(tmp_path)`` then rename over ``path``: a reader (or a resumed run) never sees half a file.
    The temporary name is unique to the process, and the folder is locked by its run."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def finite_or_none(value):
    """``value`` with every non-finite float (NaN, inf) replaced by None, in nested dicts and lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(item) for item in value]
    return value


def write_json(path: Path, results: dict) -> None:
    """Strict JSON (non-finite numbers are written as null, never as NaN)."""

    def write(tmp):
        with open(tmp, "w") as file:
            json.dump(finite_or_none(results), file, indent=2, allow_nan=False)
            file.write("\n")

    atomic_write(path, write)


def write_csv(path: Path, rows: list) -> None:
    """Rows of dicts as CSV (columns from the first row; list values as JSON), written atomically."""

    def write(tmp):
        with open(tmp, "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=list(rows[0]) if rows else [])
            writer.writeheader()
            writer.writerows([{k: json.dumps(v) if isinstance(v, list) else v for k, v in row.items()} for row in rows])

    atomic_write(path, write)


def git_commit():
    """The commit of the checkout the package runs from, or None outside a git checkout."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    return result.stdout.strip() or None


def read_json(path):
    """The JSON content of ``path``, or ``None`` when it is absent or not valid JSON (a file a killed writer
    never finished cannot exist here: every file is written atomically)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
