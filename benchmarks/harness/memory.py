"""Peak memory of one call, on CPU and CUDA, without side effects on the calling process."""

import ctypes
import ctypes.util
import functools
import gc
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

STATUS = Path("/proc/self/status")


@dataclass(frozen=True)
class Peak:
    """Memory in MiB: the peak during one call and what was allocated before it (NaN where unmeasurable)."""

    total_mib: float
    before_mib: float

    @property
    def added_mib(self) -> float:
        """What the call added on top of what was allocated before it."""
        return self.total_mib - self.before_mib


def peak_memory(fn: Callable[[], object], device: torch.device) -> Peak:
    """The :class:`Peak` of one call of ``fn``.

    CUDA: ``torch.cuda.max_memory_allocated`` after a reset of the peak statistics, and
    ``memory_allocated`` before the call. CPU (Linux): the peak resident set (``VmHWM``, reset through
    ``/proc/self/clear_refs``) and the resident set before the call, measured in a forked child process
    after one warm-up call. The child has glibc return its free memory to the OS (``malloc_trim``) and map
    every allocation above 128 KiB directly, so that memory freed by earlier calls cannot hide this call's
    peak. That allocator setting cannot be undone within a process (it ends glibc's dynamic mmap threshold
    for good) and would slow every later timing, so it never touches the calling process; neither does the
    child's thread count, nor anything ``fn`` does there. NaN where that cannot be measured (no ``fork``,
    no glibc, no ``/proc``).
    """
    if device.type == "cuda":
        gc.collect()
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return Peak(torch.cuda.max_memory_allocated(device) / 2**20, before / 2**20)
    if device.type != "cpu" or not STATUS.exists() or not hasattr(os, "fork") or _find_glibc() is None:
        return Peak(math.nan, math.nan)
    gc.collect()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: measure, report through the pipe, exit without running any cleanup
        code = 1
        try:
            os.close(read_end)
            torch.set_num_threads(1)  # OpenMP's thread pool does not survive a fork
            os.write(write_end, repr(_peak_in_this_process(fn)).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        text = pipe.read().decode()
    _, wait_status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(wait_status) != 0 or not text:
        raise RuntimeError("peak_memory: the measuring child process failed (run fn alone to see its error)")
    total_kib, before_kib = (float(value) for value in text.strip("()").split(","))
    return Peak(total_kib / 1024, before_kib / 1024)


def _peak_in_this_process(fn: Callable[[], object]) -> tuple[float, float]:
    libc = _find_glibc()
    mmap_threshold = -3  # M_MMAP_THRESHOLD in malloc.h
    if not libc.mallopt(mmap_threshold, 128 * 1024):
        return math.nan, math.nan
    # A forked child maps the parent's library code lazily: a first call pages in the code it runs (tens of
    # MiB for torch's kernels), which is not memory the call allocates.
    fn()
    gc.collect()
    libc.malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_kib("VmRSS")
    fn()
    return _status_kib("VmHWM"), before


def _status_kib(field: str) -> float:
    for line in STATUS.read_text().splitlines():
        if line.startswith(field + ":"):
            return float(line.split()[1])
    return math.nan


@functools.cache
def _find_glibc():
    """glibc (loading it changes no setting), or None where it is absent."""
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    if libc is None or not hasattr(libc, "mallopt") or not hasattr(libc, "malloc_trim"):
        return None
    return libc
