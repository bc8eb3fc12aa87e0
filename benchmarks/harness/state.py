"""Process-wide torch settings a benchmark needs, scoped to a block and restored after it.

A benchmark run as a function (by a test, by another benchmark, by ``gpu_check`` in-process) shares its
process with whatever runs next: a thread count or a global seed left behind would change later timings
and results.
"""

import contextlib

import torch


@contextlib.contextmanager
def torch_threads(count: int | None):
    """``torch.set_num_threads(count)`` inside the block (nothing when ``count`` is None)."""
    if count is None:
        yield
        return
    if count < 1:
        raise ValueError(f"threads: expected a positive number, got {count}")
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextlib.contextmanager
def seeded(seed: int):
    """torch's global CPU generator seeded with ``seed`` inside the block, for code that draws from it (module
    initialisation); the generator's state before the block is restored after it."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
