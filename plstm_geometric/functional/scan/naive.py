"""The linear recurrence one step at a time, straight from its definition: the reference the scans are
tested against."""

import torch
from torch import Tensor

__all__ = ["linear_recurrence_naive"]


def linear_recurrence_naive(
    decay: Tensor, impulse: Tensor, initial_state: Tensor | None = None, reverse: bool = False
) -> Tensor:
    """:math:`h_t = a_t h_{t-1} + b_t` as a Python loop over time; the arguments and result of
    :func:`~plstm_geometric.functional.linear_recurrence`, differentiable by autograd."""
    batch_size, length, channels = decay.shape
    state = decay.new_zeros(batch_size, channels) if initial_state is None else initial_state
    out = [None] * length
    for t in range(length - 1, -1, -1) if reverse else range(length):
        state = decay[:, t] * state + impulse[:, t]
        out[t] = state
    return torch.stack(out, dim=1) if length else impulse.clone()
