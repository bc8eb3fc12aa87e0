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
triangular and one batched triangular solve replaces the level loop. Graphs are padded within size
buckets (see :class:`~plstm_geometric.graph.components.ComponentLayout`): per bucket the cost is
:math:`O(G H (E_{max}^2 N_{max} + N_{max}^2 (K + V)))`, a few large tensor-core operations for
molecules, too much for large graphs. Autograd differentiates through the dense operations.
"""
import torch
from torch import Tensor

from ...graph.components import SizeBucket
from ...graph.plan import PLSTMPlan
from ..common import direct_term, in_compute_dtype


def dense(rows: Tensor, graph: Tensor, slot: Tensor, num_graphs: int, size: int) -> Tensor:
    """Rows ``[items, H, D]`` placed at ``(graph, slot)`` of a zero ``[graphs, H, size, D]`` tensor."""
    padded = rows.new_zeros(num_graphs, size, *rows.shape[1:])
    return padded.index_put((graph, slot), rows).transpose(1, 2)


def bucket_output(bucket: SizeBucket, query: Tensor, key: Tensor, value: Tensor, source: Tensor,
                  transition: Tensor, mark: Tensor) -> Tensor:
    """The propagated (non-direct) output ``[nodes of the bucket, H, V]``."""
    graphs, max_nodes, max_edges = bucket.num_graphs, bucket.max_nodes, bucket.max_edges
    heads = query.size(1)
    node_query, node_key, node_value = (
        dense(t[bucket.node_id], bucket.node_graph, bucket.node_slot, graphs, max_nodes) for t in (query, key, value))
    # I - A with the unit diagonal left implicit.
    transfer = query.new_zeros(graphs, max_edges, max_edges, heads).index_put(
        (bucket.line_graph, bucket.line_out_slot, bucket.line_in_slot), -transition[bucket.line_id])
    sources = query.new_zeros(graphs, max_edges, max_nodes, heads).index_put(
        (bucket.edge_graph, bucket.edge_slot, bucket.src_slot), source[bucket.edge_id])
    marks = query.new_zeros(graphs, max_nodes, max_edges, heads).index_put(
        (bucket.edge_graph, bucket.dst_slot, bucket.edge_slot), mark[bucket.edge_id])
    reach = torch.linalg.solve_triangular(transfer.permute(0, 3, 1, 2), sources.permute(0, 3, 1, 2),
                                          upper=False, unitriangular=True)
    gating = marks.permute(0, 3, 1, 2) @ reach  # [G, H, N, N]
    dense_out = (gating * (node_query @ node_key.transpose(-1, -2))) @ node_value
    return dense_out.transpose(1, 2)[bucket.node_graph, bucket.node_slot]


def plstm_dag_parallel(query: Tensor, key: Tensor, value: Tensor, source: Tensor, transition: Tensor,
                       mark: Tensor, direct: Tensor, plan: PLSTMPlan) -> Tensor:
    dtype = query.dtype
    query, key, value, source, transition, mark, direct = in_compute_dtype(
        query, key, value, source, transition, mark, direct)
    out = direct_term(query, key, value, direct)
    for bucket in plan.layout.buckets:
        out = out.index_add(0, bucket.node_id, bucket_output(bucket, query, key, value, source, transition, mark))
    return out.to(dtype)
