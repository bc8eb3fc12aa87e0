r"""Parallel (dense) form of the DAG pLSTM for batches of small graphs.

Unrolling the recurrence, the state of edge :math:`e` is a gated sum over all edges upstream of it,
:math:`C_e = \sum_{e'} P_{e e'} S_{e'} k_{\mathrm{src}(e')} v_{\mathrm{src}(e')}^\top` with
:math:`P = (I - A)^{-1}` and :math:`A_{e e'} = T_{e' \to e}`. Reading out at the nodes gives a
node-to-node gating matrix per graph and head,

.. math::
    G = \mathcal{M}\, (I - A)^{-1}\, \mathcal{S}, \qquad
    o = (G \odot Q K^\top)\, V + D \odot (Q \odot K) \mathbf{1}\, V,

where :math:`\mathcal{M}_{n e} = M_e [\mathrm{dst}(e) = n]` and :math:`\mathcal{S}_{e m} = S_e
[\mathrm{src}(e) = m]`. Edges are numbered by level inside each graph, so :math:`I - A` is unit lower
triangular and one batched triangular solve replaces the level loop. Every graph of the batch is
padded to the largest one: the cost is :math:`O(C H (E_{max}^2 N_{max} + N_{max}^2 (K + V)))`, a few
large tensor-core operations for molecules, wasteful for large or very unequal graphs. Autograd
differentiates through the dense operations.
"""
import torch
from torch import Tensor

from ...graph.plan import PLSTMPlan
from .levels import direct_term, in_compute_dtype


def plstm_dag_parallel(query: Tensor, key: Tensor, value: Tensor, source: Tensor, transition: Tensor,
                       mark: Tensor, direct: Tensor, plan: PLSTMPlan) -> Tensor:
    dtype = query.dtype
    query, key, value, source, transition, mark, direct = in_compute_dtype(
        query, key, value, source, transition, mark, direct)
    layout = plan.layout
    components, max_nodes, max_edges = layout.num_components, layout.max_nodes, layout.max_edges
    heads = query.size(1)

    def per_graph(rows: Tensor, component: Tensor, slot: Tensor, size: int) -> Tensor:
        """[items, H, D] -> [C, H, size, D], zero-padded."""
        dense = rows.new_zeros(components, size, *rows.shape[1:])
        dense = dense.index_put((component, slot), rows)
        return dense.transpose(1, 2)

    node_query = per_graph(query, layout.node_component, layout.node_slot, max_nodes)
    node_key = per_graph(key, layout.node_component, layout.node_slot, max_nodes)
    node_value = per_graph(value, layout.node_component, layout.node_slot, max_nodes)

    transfer = query.new_zeros(components, max_edges, max_edges, heads)
    transfer = transfer.index_put((layout.line_component, layout.line_out_slot, layout.line_in_slot), -transition)
    transfer = transfer.permute(0, 3, 1, 2)  # I - A with the unit diagonal left implicit
    sources = query.new_zeros(components, max_edges, max_nodes, heads)
    sources = sources.index_put((layout.edge_component, layout.edge_slot, layout.src_slot), source)
    marks = query.new_zeros(components, max_nodes, max_edges, heads)
    marks = marks.index_put((layout.edge_component, layout.dst_slot, layout.edge_slot), mark)

    reach = torch.linalg.solve_triangular(transfer, sources.permute(0, 3, 1, 2), upper=False, unitriangular=True)
    gating = marks.permute(0, 3, 1, 2) @ reach  # [C, H, N, N]
    scores = node_query @ node_key.transpose(-1, -2)
    dense_out = (gating * scores) @ node_value  # [C, H, N, V]
    out = dense_out.transpose(1, 2)[layout.node_component, layout.node_slot]
    return (out + direct_term(query, key, value, direct)).to(dtype)
