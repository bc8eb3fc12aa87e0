"""Random inputs of the linear recurrence, shared by the tests of its backends."""

import torch


def random_scan_inputs(
    batch_size: int, length: int, channels: int, dtype: torch.dtype = torch.float64, decay_range=(-1.0, 1.0)
):
    """``(decay, impulse, initial_state)``: decays uniform in ``decay_range``, standard normal impulses and
    initial state; ``[B, T, C]``, ``[B, T, C]``, ``[B, C]``, drawn from the global generator."""
    low, high = decay_range
    decay = torch.rand(batch_size, length, channels, dtype=dtype) * (high - low) + low
    impulse = torch.randn(batch_size, length, channels, dtype=dtype)
    initial_state = torch.randn(batch_size, channels, dtype=dtype)
    return decay, impulse, initial_state
