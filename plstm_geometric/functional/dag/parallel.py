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
molecules, too much for large graphs.

:class:`ParallelForm` holds the hand-written backward: with :math:`B = I - A`, :math:`R = B^{-1} \mathcal{S}`
and :math:`U = B^{-\top} (\mathcal{M}^\top \bar{G})`, the gate gradients are row contractions
(:math:`\bar{T}_{e' \to e} = U_e \cdot R_{e'}`, :math:`\bar{S}_e = U_{e, \mathrm{src}(e)}`,
:math:`\bar{M}_e = \bar{G}_{\mathrm{dst}(e)} \cdot R_e`), so the backward pass is one transposed solve
and four batched products. Under ``create_graph=True`` the backward is rebuilt from autograd-tracked
dense operations (:func:`bucket_output`), which a second derivative can follow.
"""

import torch
from torch import Tensor

from ...graph.components import ComponentLayout, SizeBucket
from ...graph.plan import PLSTMPlan
from ..common import direct_term, in_compute_dtype


def dense(rows: Tensor, graph: Tensor, slot: Tensor, num_graphs: int, size: int) -> Tensor:
    """Rows ``[items, H, D]`` placed at ``(graph, slot)`` of a zero ``[graphs, H, size, D]`` tensor."""
    padded = rows.new_zeros(num_graphs, size, *rows.shape[1:])
    return padded.index_put((graph, slot), rows).transpose(1, 2)


def bucket_output(
    bucket: SizeBucket, query: Tensor, key: Tensor, value: Tensor, source: Tensor, transition: Tensor, mark: Tensor
) -> Tensor:
    """The propagated (non-direct) output ``[nodes of the bucket, H, V]`` from autograd-tracked operations."""
    graphs, max_nodes, max_edges = bucket.num_graphs, bucket.max_nodes, bucket.max_edges
    heads = query.size(1)
    node_query, node_key, node_value = (
        dense(t[bucket.node_id], bucket.node_graph, bucket.node_slot, graphs, max_nodes) for t in (query, key, value)
    )
    # I - A with the unit diagonal left implicit.
    transfer = query.new_zeros(graphs, max_edges, max_edges, heads).index_put(
        (bucket.line_graph, bucket.line_out_slot, bucket.line_in_slot), -transition[bucket.line_id]
    )
    sources = query.new_zeros(graphs, max_edges, max_nodes, heads).index_put(
        (bucket.edge_graph, bucket.edge_slot, bucket.src_slot), source[bucket.edge_id]
    )
    marks = query.new_zeros(graphs, max_nodes, max_edges, heads).index_put(
        (bucket.edge_graph, bucket.dst_slot, bucket.edge_slot), mark[bucket.edge_id]
    )
    reach = torch.linalg.solve_triangular(
        transfer.permute(0, 3, 1, 2), sources.permute(0, 3, 1, 2), upper=False, unitriangular=True
    )
    gating = marks.permute(0, 3, 1, 2) @ reach  # [G, H, N, N]
    dense_out = (gating * (node_query @ node_key.transpose(-1, -2))) @ node_value
    return dense_out.transpose(1, 2)[bucket.node_graph, bucket.node_slot]


def propagated_autograd(
    layout: ComponentLayout, query: Tensor, key: Tensor, value: Tensor, source: Tensor, transition: Tensor, mark: Tensor
) -> Tensor:
    out = query.new_zeros(query.size(0), query.size(1), value.size(2))
    for bucket in layout.buckets:
        out = out.index_add(0, bucket.node_id, bucket_output(bucket, query, key, value, source, transition, mark))
    return out


class ParallelForm(torch.autograd.Function):
    """The propagated output ``[N, H, V]`` of all size buckets. Tensors are laid out head-major
    (``[H, graphs * padded size, ...]``) so that every bucket's batch of ``H x graphs`` dense problems is a
    contiguous view, and rows are placed and gathered with the flat positions cached in the layout."""

    @staticmethod
    def forward(ctx, query, key, value, source, transition, mark, layout):
        num_nodes, heads, key_channels = query.shape
        value_channels = value.size(2)
        # One gather per bucket for q, k and v together, from a head-major copy with a zero row at index N
        # for the padded positions.
        nodes = torch.cat([query, key, value], dim=2).transpose(0, 1)
        nodes = torch.cat([nodes, nodes.new_zeros(heads, 1, nodes.size(2))], dim=1)
        source_t, transition_t, mark_t = source.t(), transition.t(), mark.t()
        out = query.new_zeros(heads, num_nodes, value_channels)
        saved = []
        for bucket in layout.buckets:
            graphs, max_nodes, max_edges = bucket.num_graphs, bucket.max_nodes, bucket.max_edges
            batch = heads * graphs
            padded = nodes[:, bucket.node_map].view(batch, max_nodes, -1)
            node_query, node_key, node_value = padded.split([key_channels, key_channels, value_channels], dim=2)
            transfer = query.new_zeros(heads, graphs * max_edges * max_edges)
            transfer.index_copy_(1, bucket.line_entry, transition_t[:, bucket.line_id].neg())
            transfer = transfer.view(batch, max_edges, max_edges)
            sources = query.new_zeros(heads, graphs * max_edges * max_nodes)
            sources.index_copy_(1, bucket.src_entry, source_t[:, bucket.edge_id])
            reach = torch.linalg.solve_triangular(
                transfer, sources.view(batch, max_edges, max_nodes), upper=False, unitriangular=True
            ).contiguous()
            # The mark matrix has one entry per edge: G = M R is a weighted sum of rows of R.
            edge_mark = mark_t[:, bucket.edge_id, None]
            reach_rows = reach.view(heads, graphs * max_edges, max_nodes)
            gating = query.new_zeros(heads, graphs * max_nodes, max_nodes)
            gating.index_add_(1, bucket.dst_row, reach_rows[:, bucket.edge_row] * edge_mark)
            gating = gating.view(batch, max_nodes, max_nodes)
            scores = node_query @ node_key.transpose(1, 2)
            bucket_out = (gating * scores) @ node_value
            out[:, bucket.node_id] = bucket_out.view(heads, graphs * max_nodes, -1)[:, bucket.node_row]
            saved.append((padded, transfer, reach, gating, scores))
        ctx.layout = layout
        ctx.channels = (key_channels, value_channels)
        # Everything through save_for_backward, so that saved-tensor hooks (activation checkpointing for
        # recompute_states=True, offloading) see the per-bucket intermediates too.
        ctx.save_for_backward(query, key, value, source, transition, mark, *(t for part in saved for t in part))
        return out.transpose(0, 1)

    @staticmethod
    def backward(ctx, out_grad):
        layout = ctx.layout
        query, key, value, source, transition, mark, *saved = ctx.saved_tensors
        if torch.is_grad_enabled():
            # create_graph=True: the saved intermediates are constants to autograd, so the gradients are
            # taken through the tracked dense form instead.
            inputs = (query, key, value, source, transition, mark)
            needed = [t for t, needs in zip(inputs, ctx.needs_input_grad) if needs]
            out = propagated_autograd(layout, *inputs)
            grads = iter(torch.autograd.grad(out, needed, out_grad, create_graph=True, allow_unused=True))
            return (*(next(grads) if needs else None for needs in ctx.needs_input_grad[:6]), None)
        key_channels, value_channels = ctx.channels
        num_nodes, heads = query.shape[:2]
        out_grad = out_grad.transpose(0, 1)
        out_grad = torch.cat([out_grad, out_grad.new_zeros(heads, 1, value_channels)], dim=1)
        nodes_grad = query.new_zeros(heads, num_nodes + 1, 2 * key_channels + value_channels)
        source_grad = source.new_zeros(heads, source.size(0))
        transition_grad = transition.new_zeros(heads, transition.size(0))
        mark_grad = mark.new_zeros(heads, mark.size(0))
        mark_t = mark.t()
        per_bucket = [saved[i : i + 5] for i in range(0, len(saved), 5)]
        for bucket, (padded, transfer, reach, gating, scores) in zip(layout.buckets, per_bucket):
            graphs, max_nodes, max_edges = bucket.num_graphs, bucket.max_nodes, bucket.max_edges
            batch = heads * graphs
            node_query, node_key, node_value = padded.split([key_channels, key_channels, value_channels], dim=2)
            bucket_grad = out_grad[:, bucket.node_map].view(batch, max_nodes, value_channels)
            weighted_grad = bucket_grad @ node_value.transpose(1, 2)  # gradient of gating * scores
            value_part = (gating * scores).transpose(1, 2) @ bucket_grad
            scores_grad = weighted_grad * gating
            gating_grad = (weighted_grad * scores).view(heads, graphs * max_nodes, max_nodes)
            query_part = scores_grad @ node_key
            key_part = scores_grad.transpose(1, 2) @ node_query
            nodes_grad.index_add_(
                1,
                bucket.node_map,
                torch.cat([query_part, key_part, value_part], dim=2).view(heads, graphs * max_nodes, -1),
            )
            # Through G = M R: rows of the gating gradient go back to the edges that wrote them.
            reach_rows = reach.view(heads, graphs * max_edges, max_nodes)
            gating_at_edge = gating_grad[:, bucket.dst_row]
            mark_grad[:, bucket.edge_id] = (gating_at_edge * reach_rows[:, bucket.edge_row]).sum(-1)
            reach_grad = query.new_zeros(heads, graphs * max_edges, max_nodes)
            reach_grad[:, bucket.edge_row] = gating_at_edge * mark_t[:, bucket.edge_id, None]
            # Through R = B^{-1} S: U = B^{-T} R_grad; S_grad = U at the source entries, and the transition
            # T = -B[out, in] gets (U R^T)[out, in].
            solved = torch.linalg.solve_triangular(
                transfer.transpose(1, 2), reach_grad.view(batch, max_edges, max_nodes), upper=True, unitriangular=True
            ).contiguous()
            source_grad[:, bucket.edge_id] = solved.view(heads, -1)[:, bucket.src_entry]
            solved_rows = solved.view(heads, graphs * max_edges, max_nodes)
            transition_grad[:, bucket.line_id] = (
                solved_rows[:, bucket.line_out_row] * reach_rows[:, bucket.line_in_row]
            ).sum(-1)
        nodes_grad = nodes_grad[:, :num_nodes].transpose(0, 1)
        query_grad, key_grad, value_grad = nodes_grad.split([key_channels, key_channels, value_channels], dim=2)
        return query_grad, key_grad, value_grad, source_grad.t(), transition_grad.t(), mark_grad.t(), None


def plstm_dag_parallel(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    source: Tensor,
    transition: Tensor,
    mark: Tensor,
    direct: Tensor,
    plan: PLSTMPlan,
) -> Tensor:
    dtype = query.dtype
    query, key, value, source, transition, mark, direct = in_compute_dtype(
        query, key, value, source, transition, mark, direct
    )
    propagated = ParallelForm.apply(query, key, value, source, transition, mark, plan.layout)
    return (direct_term(query, key, value, direct) + propagated).to(dtype)
