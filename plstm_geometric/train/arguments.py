"""Argument types shared by the training command lines (argparse ``type=`` callables).

Nothing here imports torch at module level: the command lines build their parsers, print ``--help`` and
refuse bad flags without paying for torch's import.
"""

import argparse
import math
import os

# The default of every CLI's --threads. torch's own default (one thread per core) makes the many small ops
# of pLSTM several times slower than a single thread once other processes share the cores (OpenMP threads
# wait for each other on every op); one thread is never far from the best on tiny ops and safe under load.
DEFAULT_THREADS = 1
THREADS_HELP = (
    "CPU threads for torch (torch.set_num_threads). The default is 1, not torch's one per core: "
    "pLSTM runs many small ops, and with several threads on a busy CPU each op waits for the others "
    "(several times slower); raise it for large batches on an otherwise idle machine"
)


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
    import torch  # only when a device is named: --help and other flag errors stay fast

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


# torch crashes (segmentation fault) when asked for absurd thread counts; more threads than this never help.
MAX_THREADS_PER_CORE = 4


def thread_count(text: str) -> int:
    """argparse type of ``--threads``: an integer from 1 to ``MAX_THREADS_PER_CORE`` times the CPU count."""
    value = _number(int, text)
    limit = MAX_THREADS_PER_CORE * (os.cpu_count() or 1)
    if not 1 <= value <= limit:
        raise argparse.ArgumentTypeError(f"expected 1 to {limit} ({MAX_THREADS_PER_CORE} per CPU core), got {value}")
    return value
