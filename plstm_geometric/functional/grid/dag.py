"""The ``"dag"`` backend of the grid op: the grid as a disjoint union of ``B`` grid DAGs, run by
:func:`~plstm_geometric.functional.plstm_dag` (structure and plan cached per shape)."""

import torch
from torch import Tensor

from ...graph.grid import grid_dag, grid_plan
from ..dag import plstm_dag
from .gates import GridGates

__all__ = ["plstm_grid_dag"]


def plstm_grid_dag(query: Tensor, key: Tensor, value: Tensor, gates: GridGates, recompute_states: bool) -> Tensor:
    """The grid as a disjoint union of ``B`` grid DAGs, run by ``plstm_dag``."""
    B, X, Y, H, K = query.shape
    num_nodes = B * X * Y
    grid = grid_dag(X, Y, query.device, batch_size=B)
    plan = grid_plan(X, Y, query.device, batch_size=B)
    # Per-node gate tables in the layout the index maps of GridDAG point into.
    source = torch.stack([gates.source_r, gates.source_d], dim=3).reshape(num_nodes * 2, H)[grid.edge_source]
    mark = torch.stack([gates.mark_r, gates.mark_d], dim=3).reshape(num_nodes * 2, H)[grid.edge_mark]
    transition = torch.stack(
        [gates.transition_rr, gates.transition_dd, gates.transition_rd, gates.transition_dr], dim=3
    )
    transition = transition.reshape(num_nodes * 4, H)[grid.line_transition]
    out = plstm_dag(
        query.reshape(num_nodes, H, K),
        key.reshape(num_nodes, H, K),
        value.reshape(num_nodes, H, -1),
        source,
        transition,
        mark,
        gates.direct.reshape(num_nodes, H),
        grid.edge_index,
        grid.line_edge_index,
        plan=plan,
        recompute_states=recompute_states,
    )
    return out.view(B, X, Y, H, -1)
