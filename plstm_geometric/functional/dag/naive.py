"""A naive pLSTM written straight from the equations: one edge at a time, in topological order.

It mirrors how the authors' reference implementation walks a graph and serves two purposes: the ground
truth the fast backends are tested against, and the "per-edge loop" baseline of the benchmarks.
"""

import torch
from torch import Tensor

from ...graph.dag import node_levels

__all__ = ["plstm_dag_naive"]


def plstm_dag_naive(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    source: Tensor,
    transition: Tensor,
    mark: Tensor,
    direct: Tensor,
    edge_index: Tensor,
    line_edge_index: Tensor,
) -> Tensor:
    """Same signature and result as :func:`~plstm_geometric.functional.plstm_dag`, differentiable by autograd."""
    num_nodes = query.size(0)
    src, dst = edge_index.tolist()
    incoming = {e: [] for e in range(len(src))}
    for line_id, (e_in, e_out) in enumerate(line_edge_index.t().tolist()):
        incoming[e_out].append((line_id, e_in))
    edge_level = node_levels(edge_index, num_nodes)[edge_index[0]].tolist()
    states = {}
    for e in sorted(range(len(src)), key=lambda e: edge_level[e]):
        state = source[e, :, None, None] * key[src[e], :, :, None] * value[src[e], :, None, :]
        for line_id, e_in in incoming[e]:
            state = state + transition[line_id, :, None, None] * states[e_in]
        states[e] = state
    into = {n: [] for n in range(num_nodes)}
    for e, n in enumerate(dst):
        into[n].append(e)
    rows = []
    for n in range(num_nodes):
        row = direct[n, :, None] * (query[n] * key[n]).sum(-1, keepdim=True) * value[n]
        for e in into[n]:
            row = row + mark[e, :, None] * torch.einsum("hk,hkv->hv", query[n], states[e])
        rows.append(row)
    return torch.stack(rows)
