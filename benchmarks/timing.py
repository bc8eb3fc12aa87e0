"""Wall-clock timing that is honest on both CPU and CUDA (synchronises, warms up, takes the median), and
peak memory of one call on both."""

import ctypes
import ctypes.util
import functools
import gc
import math
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch


def measure(fn: Callable[[], object], device: torch.device, repeats: int = 10, warmup: int = 2) -> float:
    """Median seconds per call of ``fn``."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_memory(fn: Callable[[], object], device: torch.device) -> float:
    """Peak memory in MiB that one call of ``fn`` adds on top of what was allocated before it.

    CUDA: ``torch.cuda.max_memory_allocated``. CPU (Linux): the growth of the process's peak resident set
    (``VmHWM``, reset through ``/proc/self/clear_refs``) over its resident set before the call. glibc first
    returns its free memory to the OS (``malloc_trim``) and from then on maps every allocation above 128 KiB
    directly, so memory freed by earlier calls cannot hide this call's peak. NaN where that cannot be
    measured.
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) / 2**20
    status = Path("/proc/self/status")
    libc = _glibc()
    if device.type != "cpu" or not status.exists() or libc is None:
        return float("nan")
    gc.collect()
    libc.malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_kib(status, "VmRSS")
    fn()
    return (_status_kib(status, "VmHWM") - before) / 1024


def _status_kib(status: Path, field: str) -> int:
    for line in status.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return math.nan


@functools.cache
def _glibc():
    """glibc, with its mmap threshold fixed at 128 KiB (by default the threshold grows after frees, and
    freed blocks below it stay in the heap, reused without showing up in the resident set); None where
    glibc is absent."""
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    if libc is None or not hasattr(libc, "mallopt") or not hasattr(libc, "malloc_trim"):
        return None
    mmap_threshold = -3  # M_MMAP_THRESHOLD in malloc.h
    return libc if libc.mallopt(mmap_threshold, 128 * 1024) else None
