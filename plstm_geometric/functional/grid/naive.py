"""The grid pLSTM straight from the equations, one node at a time: the reference the backends are tested
against."""

import torch
from torch import Tensor

from .gates import GridGates

__all__ = ["plstm_grid_naive"]


def plstm_grid_naive(query: Tensor, key: Tensor, value: Tensor, gates: GridGates) -> Tensor:
    """The arguments and result of :func:`~plstm_geometric.functional.plstm_grid` (swept from ``(0, 0)``),
    states in a dict keyed by ``(x, y)``; differentiable by autograd."""
    B, X, Y, H, K = query.shape
    g = gates
    zero = query.new_zeros(B, H, K, value.size(-1))
    state_r, state_d, rows = {}, {}, []
    for x in range(X):
        row = []
        for y in range(Y):

            def at(gate, x=x, y=y):
                return gate[:, x, y, :, None, None]

            incoming_r, incoming_d = state_r.get((x - 1, y), zero), state_d.get((x, y - 1), zero)
            key_value = key[:, x, y, :, :, None] * value[:, x, y, :, None, :]
            state_r[x, y] = (
                at(g.transition_rr) * incoming_r + at(g.transition_dr) * incoming_d + at(g.source_r) * key_value
            )
            state_d[x, y] = (
                at(g.transition_dd) * incoming_d + at(g.transition_rd) * incoming_r + at(g.source_d) * key_value
            )
            q = query[:, x, y]
            out = (
                g.mark_r[:, x, y, :, None] * torch.einsum("bhk,bhkv->bhv", q, incoming_r)
                + g.mark_d[:, x, y, :, None] * torch.einsum("bhk,bhkv->bhv", q, incoming_d)
                + (g.direct[:, x, y] * (q * key[:, x, y]).sum(-1))[..., None] * value[:, x, y]
            )
            row.append(out)
        rows.append(torch.stack(row, dim=1))
    return torch.stack(rows, dim=1)
