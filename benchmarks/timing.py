"""Wall-clock timing that is honest on both CPU and CUDA (synchronises, warms up, takes the median), and
peak memory of one call on both."""

import ctypes
import ctypes.util
import functools
import gc
import math
import os
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

    CUDA: ``torch.cuda.max_memory_allocated``. CPU (Linux): the growth of the peak resident set (``VmHWM``,
    reset through ``/proc/self/clear_refs``) over the resident set before the call, measured in a forked
    child process after one warm-up call. The child has glibc return its free memory to the OS
    (``malloc_trim``) and map every allocation above 128 KiB directly, so that memory freed by earlier
    calls cannot hide this call's peak.
    That allocator setting cannot be undone within a process (it ends glibc's dynamic mmap threshold for
    good) and would slow every later timing, so it never touches the calling process. NaN where that
    cannot be measured (no ``fork``, no glibc, no ``/proc``).
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) / 2**20
    status = Path("/proc/self/status")
    if device.type != "cpu" or not status.exists() or not hasattr(os, "fork") or _find_glibc() is None:
        return float("nan")
    gc.collect()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: measure, report through the pipe, exit without running any cleanup
        code = 1
        try:
            os.close(read_end)
            torch.set_num_threads(1)  # OpenMP's thread pool does not survive a fork
            result = _peak_in_this_process(fn, status)
            os.write(write_end, repr(result).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        text = pipe.read().decode()
    _, wait_status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(wait_status) != 0 or not text:
        raise RuntimeError("peak_memory: the measuring child process failed (run fn alone to see its error)")
    return float(text)


def _peak_in_this_process(fn: Callable[[], object], status: Path) -> float:
    libc = _find_glibc()
    mmap_threshold = -3  # M_MMAP_THRESHOLD in malloc.h
    if not libc.mallopt(mmap_threshold, 128 * 1024):
        return float("nan")
    # A forked child maps the parent's library code lazily: a first call pages in the code it runs (tens of
    # MiB for torch's kernels), which is not memory the call allocates.
    fn()
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
def _find_glibc():
    """glibc (loading it changes no setting), or None where it is absent."""
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    if libc is None or not hasattr(libc, "mallopt") or not hasattr(libc, "malloc_trim"):
        return None
    return libc
