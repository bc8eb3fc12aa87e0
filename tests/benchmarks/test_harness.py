"""benchmarks/harness: timing, peak memory, caps, isolation and scoped settings, and that none of them
leaves anything behind in the calling process that would change a later timing."""

import ctypes
import ctypes.util
import os
import signal
import statistics
import sys
import time

import pytest
import torch

from benchmarks.harness import (
    CapReached,
    Timing,
    check_deadline,
    hard_cap,
    measure,
    measure_many,
    peak_memory,
    run_isolated,
    seeded,
    torch_threads,
)

CPU = torch.device("cpu")
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="CPU peak memory is read from /proc")


def test_measure_times_repeats_calls_after_warmup_and_takes_their_median():
    calls = []
    timing = measure(lambda: calls.append(1), CPU, repeats=7, warmup=3)
    assert isinstance(timing, Timing) and timing.runs == 7 and len(calls) == 10
    assert timing.median == statistics.median(timing.times) and all(t >= 0 for t in timing.times)
    assert timing.total == pytest.approx(sum(timing.times))


def test_measure_many_interleaves_the_closures():
    order = []
    timings = measure_many([lambda: order.append("a"), lambda: order.append("b")], CPU, repeats=2, warmup=1)
    assert order == ["a", "b"] * 3 and [t.runs for t in timings] == [2, 2]


def test_budget_and_deadline_stop_the_rounds_after_one():
    calls = []

    def slow():
        calls.append(1)
        time.sleep(0.02)

    # a call longer than the budget: one warm-up call, one timed call
    timing = measure(slow, CPU, repeats=10, warmup=3, budget_s=0.01)
    assert timing.runs == 1 and len(calls) == 2 and timing.median >= 0.02
    timing = measure(lambda: None, CPU, repeats=10, warmup=2, deadline=time.time() - 1)
    assert timing.runs == 1
    with pytest.raises(ValueError, match="repeats"):
        measure(lambda: None, CPU, repeats=0)


@linux_only
def test_cpu_peak_memory_sees_a_temporary_allocation():
    def allocate_64_mib():
        block = torch.ones(16, 2**20)  # 64 MiB of float32, freed on return
        return float(block[0, 0])

    peak = peak_memory(allocate_64_mib, CPU)
    assert 60 < peak.added_mib < 80 and peak.total_mib > peak.before_mib > 0
    # Freed memory must not hide the next call's peak.
    assert 60 < peak_memory(allocate_64_mib, CPU).added_mib < 80


@linux_only
def test_cpu_peak_memory_runs_the_call_in_another_process():
    seen = []

    def record_pid():
        seen.append(os.getpid())
        torch.ones(2**20)

    assert peak_memory(record_pid, CPU).added_mib >= 0
    assert seen == []

    def fail():
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="peak_memory"):
        peak_memory(fail, CPU)


def mmapped_blocks(libc) -> int:
    """glibc's count of allocations served by mmap (``mallinfo2().hblks``)."""

    class MallInfo2(ctypes.Structure):
        _fields_ = [
            (name, ctypes.c_size_t)
            for name in "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()
        ]

    libc.mallinfo2.restype = MallInfo2
    return libc.mallinfo2().hblks


@linux_only
def test_cpu_peak_memory_leaves_threads_grad_mode_and_allocator_untouched():
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    if not hasattr(libc, "mallinfo2"):
        pytest.skip("glibc without mallinfo2")
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    with torch_threads(2):
        with torch.no_grad():
            peak_memory(lambda: torch.ones(2**20).sum(), CPU)
            assert torch.get_num_threads() == 2 and not torch.is_grad_enabled()
    assert torch.is_grad_enabled()
    # glibc raises its mmap threshold to the size of a freed mmapped block, unless mallopt fixed the
    # threshold (what the measuring child does): after freeing 8 MiB, 4 MiB must come from the heap.
    libc.free(libc.malloc(8 * 2**20))
    before = mmapped_blocks(libc)
    block = libc.malloc(4 * 2**20)
    try:
        assert mmapped_blocks(libc) == before, "the mmap threshold is fixed in this process"
    finally:
        libc.free(block)


def test_hard_cap_stops_code_that_never_checks_and_restores_the_handler():
    previous = signal.getsignal(signal.SIGALRM)
    start = time.time()
    with pytest.raises(CapReached):
        with hard_cap(time.time() + 0.2):
            time.sleep(5)
    assert time.time() - start < 2
    assert signal.getsignal(signal.SIGALRM) == previous and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    with hard_cap(time.time() + 5):
        pass
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    with pytest.raises(CapReached):
        check_deadline(time.time() - 1)
    check_deadline(time.time() + 60)


def test_isolated_process_is_killed_at_its_time(tmp_path):
    start = time.time()
    polls = []
    command = [sys.executable, "-c", "import time; print('started', flush=True); time.sleep(60)"]
    returncode, killed = run_isolated(
        command, tmp_path, tmp_path / "log", time.time() + 1, 0.05, lambda: polls.append(1)
    )
    assert killed and returncode is None and time.time() - start < 10 and polls
    returncode, killed = run_isolated(
        [sys.executable, "-c", "print('done')"], tmp_path, tmp_path / "log", time.time() + 60
    )
    assert (returncode, killed) == (0, False) and (tmp_path / "log").read_text() == "done\n"


def test_scoped_threads_and_seed_are_restored():
    threads = torch.get_num_threads()
    with torch_threads(threads + 1):
        assert torch.get_num_threads() == threads + 1
    assert torch.get_num_threads() == threads
    with torch_threads(None):
        assert torch.get_num_threads() == threads
    state = torch.get_rng_state()
    with seeded(3):
        first = torch.rand(3)
    with seeded(3):
        assert torch.equal(torch.rand(3), first)
    assert torch.equal(torch.get_rng_state(), state)
