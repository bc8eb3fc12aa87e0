"""Run plumbing shared by the training command lines: argument types, device and thread choice, seeding,
the run folder (locked, written atomically), safe checkpoints, results files and the git commit.

A run folder (``--out``) belongs to one run at a time: :class:`RunFolder` holds an exclusive lock on
``<out>/.lock`` while the run lives (released by the kernel when the process ends, killed or not), and
every file in it is written to a temporary name and renamed into place, so a reader never sees half a
file. Checkpoints hold only tensors, numbers, strings, lists and dicts and are loaded with
``torch.load(weights_only=True)``: loading one never runs code.
"""

import argparse
import csv
import fcntl
import json
import math
import os
import pickle
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

# The default of every CLI's --threads. torch's own default (one thread per core) makes the many small ops
# of pLSTM several times slower than a single thread once other processes share the cores (OpenMP threads
# wait for each other on every op); one thread is never far from the best on tiny ops and safe under load.
DEFAULT_THREADS = 1
THREADS_HELP = (
    "CPU threads for torch (torch.set_num_threads). The default is 1, not torch's one per core: "
    "pLSTM runs many small ops, and with several threads on a busy CPU each op waits for the others "
    "(several times slower); raise it for large batches on an otherwise idle machine"
)


class RunError(RuntimeError):
    """A run cannot start or go on; the message says why and what to do. The CLIs print it and exit 1."""


class Diverged(RunError):
    """Training produced a non-finite loss or metric."""


# ---------------------------------------------------------------------------------------------- arguments
def _number(kind, text: str):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected {'an integer' if kind is int else 'a number'}, got {text!r}"
        ) from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def int_at_least(low: int):
    """argparse type: an integer >= ``low``."""

    def parse(text: str) -> int:
        value = _number(int, text)
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {value}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def float_in(low: float = -math.inf, high: float = math.inf, low_open: bool = False, high_open: bool = False):
    """argparse type: a finite number in the interval from ``low`` to ``high`` (open ends as asked)."""

    def parse(text: str) -> float:
        value = _number(float, text)
        if value < low or (low_open and value == low) or value > high or (high_open and value == high):
            if math.isinf(high):
                wanted = f"{'>' if low_open else '>='} {low:g}"
            else:
                wanted = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
            raise argparse.ArgumentTypeError(f"expected a finite number {wanted}, got {text}")
        return value

    parse.__name__ = "number"
    return parse


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)
positive_float = float_in(0.0, low_open=True)
non_negative_float = float_in(0.0)


def device_name(text: str) -> str:
    """argparse type: ``auto``, ``cpu``, ``cuda`` or ``cuda:<index>`` of a device this machine has."""
    if text == "auto":
        return text
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected 'auto', 'cpu', 'cuda' or 'cuda:<index>', got {text!r}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(
                f"{text!r} asked for, but this torch build or machine has no CUDA device; use --device cpu (or auto)"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise argparse.ArgumentTypeError(
                f"{text!r} asked for, but there are {torch.cuda.device_count()} CUDA device(s)"
            )
    elif device.type != "cpu":
        raise argparse.ArgumentTypeError(f"expected 'auto', 'cpu', 'cuda' or 'cuda:<index>', got {text!r}")
    return text


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> CUDA when available; a bare ``cuda`` -> the process's local rank's GPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    return device


def device_description(device: torch.device) -> str:
    return str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")


# torch crashes (segmentation fault) when asked for absurd thread counts; more threads than this never help.
MAX_THREADS_PER_CORE = 4


def thread_count(text: str) -> int:
    """argparse type of ``--threads``: an integer from 1 to ``MAX_THREADS_PER_CORE`` times the CPU count."""
    value = _number(int, text)
    limit = MAX_THREADS_PER_CORE * (os.cpu_count() or 1)
    if not 1 <= value <= limit:
        raise argparse.ArgumentTypeError(f"expected 1 to {limit} ({MAX_THREADS_PER_CORE} per CPU core), got {value}")
    return value


def set_threads(threads: int) -> None:
    torch.set_num_threads(threads)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run_cli(run, argv, prog: str) -> int:
    """``run(argv)``, with a :class:`RunError` printed as ``prog: error: ...`` and exit status 1 (argparse's
    own errors exit with 2): the ``main`` of every CLI, usable as a console script."""
    try:
        run(argv)
    except RunError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 1
    return 0


# ---------------------------------------------------------------------------------------------- run folder
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
    def write(tmp):
        with open(tmp, "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)

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


# ---------------------------------------------------------------------------------------------- checkpoints
def rng_state() -> dict:
    """The torch, CUDA, NumPy and Python RNG states as tensors, numbers and lists (safe to load)."""
    _, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    numpy = state["numpy"]
    np.random.set_state(
        ("MT19937", numpy["keys"].numpy().astype(np.uint32), numpy["pos"], numpy["has_gauss"], numpy["cached_gaussian"])
    )
    python = state["python"]
    random.setstate((python["version"], tuple(python["internal"]), python["gauss_next"]))


def save_checkpoint(path: Path, checkpoint: dict) -> None:
    """Writes ``checkpoint`` atomically; it must hold only what :func:`load_checkpoint` accepts."""
    atomic_write(path, lambda tmp: torch.save(checkpoint, tmp))


def load_checkpoint(path: Path, required=()) -> dict:
    """The checkpoint at ``path``, loaded with ``weights_only=True`` (no code runs), as a dict with the
    ``required`` keys; anything else raises a :class:`RunError` that names the file and the way out."""
    fix = (
        f"delete {path} (or the run folder) to train from scratch, or choose another --out; checkpoints "
        "written by plstm_geometric hold only tensors, numbers, strings, lists and dicts"
    )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        # torch reports garbage and refused objects alike; a refused object is named as a GLOBAL
        lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
        detail = next((line for line in lines if "GLOBAL" in line), None)
        if detail is not None:
            raise RunError(
                f"{path}: refused to load: it holds objects other than tensors, numbers, strings, "
                f"lists and dicts, which could run code ({detail.strip()}); {fix}"
            ) from None
        detail = next((line for line in lines if "Unsupported" in line), lines[0] if lines else "")
        raise RunError(f"{path}: damaged checkpoint ({detail.strip()}); {fix}") from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, AssertionError, IndexError) as error:
        raise RunError(f"{path}: damaged checkpoint ({type(error).__name__}: {error}); {fix}") from None
    if not isinstance(checkpoint, dict):
        raise RunError(f"{path}: damaged checkpoint (expected a dict, got {type(checkpoint).__name__}); {fix}")
    missing = [key for key in required if key not in checkpoint]
    if missing:
        raise RunError(f"{path}: damaged or foreign checkpoint (no {', '.join(map(repr, missing))}); {fix}")
    return checkpoint


def warmup_cosine(step: int, total_steps: int, warmup_steps: int) -> float:
    """Learning-rate factor: linear from ``1 / warmup_steps`` up to 1, then cosine down to 0 at the end."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
