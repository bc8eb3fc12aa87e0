"""Median wall-clock time of calls, honest on CPU and CUDA.

Every benchmark times through :func:`measure` (one closure) or :func:`measure_many` (closures compared with
each other), so that warm-up, synchronisation, early stopping and the statistic are the same everywhere.
"""

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Timing:
    """Seconds of each timed call of one closure, in the order they ran."""

    times: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def runs(self) -> int:
        return len(self.times)

    @property
    def total(self) -> float:
        return math.fsum(self.times)


def measure(
    fn: Callable[[], object],
    device: torch.device,
    repeats: int = 10,
    warmup: int = 2,
    budget_s: float = math.inf,
    deadline: float | None = None,
) -> Timing:
    """The :class:`Timing` of ``fn``: ``warmup`` untimed calls, then up to ``repeats`` timed ones (see
    :func:`measure_many` for when fewer are timed)."""
    return measure_many([fn], device, repeats, warmup, budget_s, deadline)[0]


def measure_many(
    fns: Sequence[Callable[[], object]],
    device: torch.device,
    repeats: int = 10,
    warmup: int = 2,
    budget_s: float = math.inf,
    deadline: float | None = None,
) -> list[Timing]:
    """One :class:`Timing` per closure of ``fns``.

    Calls run in rounds, each calling every closure once in turn: ``warmup`` untimed rounds, then up to
    ``repeats`` timed ones. Interleaving puts a burst of foreign load on a shared machine on all closures
    alike, so their ratios stay meaningful. Both kinds of rounds stop early, after at least one, once one
    closure's calls of that kind add up to ``budget_s`` seconds or the wall clock (``time.time()``) passes
    ``deadline``: a call that takes longer than the budget is timed once, after one warm-up call.

    On CUDA each call is timed with CUDA events after the queue has drained, so the time is the call's own
    work and not what earlier calls left queued; on CPU with ``time.perf_counter``.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats, warmup: expected at least 1 and 0, got {repeats} and {warmup}")
    _rounds(fns, device, warmup, budget_s, deadline)
    return [Timing(tuple(times)) for times in _rounds(fns, device, repeats, budget_s, deadline)]


def _rounds(fns, device, rounds: int, budget_s: float, deadline: float | None) -> list[list[float]]:
    times = [[] for _ in fns]
    for _ in range(rounds):
        for fn, fn_times in zip(fns, times):
            fn_times.append(_time_call(fn, device))
        if max(math.fsum(fn_times) for fn_times in times) >= budget_s:
            break
        if deadline is not None and time.time() >= deadline:
            break
    return times


def _time_call(fn: Callable[[], object], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        stream = torch.cuda.current_stream(device)
        start.record(stream)
        fn()
        end.record(stream)
        end.synchronize()
        return start.elapsed_time(end) / 1e3
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
