r"""Banded pLSTM sweep: dense inside bands of consecutive levels, states carried only where bands meet.

The level sweep writes a ``K x V`` state for every edge at every level; on deep graphs that memory
traffic, not arithmetic, sets its cost. This form cuts every graph into *pieces* of ``band_levels``
consecutive levels (:class:`~plstm_geometric.graph.bands.BandLayout`). Inside a piece :math:`p` the
parallel form applies (see :mod:`.parallel`): with :math:`A` the transitions between the piece's own
edges, :math:`\mathcal{S}` its source gates, :math:`\mathcal{T}` the transitions from the *inputs* (edges
of earlier pieces that feed it) and :math:`\mathcal{M}` its mark gates,

.. math::
    [R_S \; R_B] = (I - A)^{-1} [\mathcal{S} \; \mathcal{T}], \qquad
    C_e = \sum_m (R_S)_{e m}\, k_m v_m^\top + \sum_b (R_B)_{e b}\, C_b,

    o_n = \sum_m (\mathcal{M} R_S)_{n m}\, (q_n^\top k_m)\, v_m
        + \sum_b (\mathcal{M} R_B)_{n b}\, q_n^\top C_b .

Only the *exports*, edges with a line edge into a later piece, get a ``K x V`` state :math:`C_e`, and
only their recurrence is sequential: one small step per band, from the exports of earlier bands. All
dense solves and products of all pieces run as a few batched operations. Autograd differentiates the
form (twice, too); the carried states have their own backward (:class:`CarriedStates`).

On CPU the form costs about what the level sweep costs (1.1x on 64 peptides: pieces of about 20 edges
make its small dense solves no cheaper than the sweep's passes), so ``backend="auto"`` does not pick it;
it is meant for GPUs, where the sweep is bound by its number of steps (151 levels there, 19 bands here).
"""

import torch
import torch.nn.functional as F
from torch import Tensor

from ...graph.bands import BandBucket, BandLayout
from ...graph.plan import PLSTMPlan
from ..common import direct_term, in_compute_dtype


def link_sweep(carried: Tensor, weights: Tensor, layout: BandLayout) -> Tensor:
    """``carried[dst] += weight * carried[src]`` over the links, band after band, in place: the inputs of
    a band's exports lie in earlier bands, which are final when it is visited."""
    ptr = layout.link_band_ptr
    for band in range(layout.num_bands):
        lo, hi = ptr[band], ptr[band + 1]
        if lo < hi:
            rows = carried.index_select(0, layout.link_src[lo:hi])
            carried.index_add_(0, layout.link_dst[lo:hi], rows * weights[lo:hi, :, None, None])
    return carried


class CarriedStates(torch.autograd.Function):
    r"""The states ``[X, H, K, V]`` of all exports: :math:`C_x = C^{own}_x + \sum_{(y, x)} w_{yx} C_y` over
    the links, from the exports' own parts ``[X, H, K, V]`` and the link weights ``[links, H]``.

    The backward pass runs the transposed recurrence from the last band down,
    :math:`\bar{C}_y \mathrel{+}= w_{yx} \bar{C}_x`, and :math:`\bar{w}_{yx} = \langle \bar{C}_x, C_y \rangle`:
    two in-place sweeps over the links instead of autograd's copy of all states per band. Under
    ``create_graph=True`` it is rebuilt from tracked operations, which a second derivative can follow.
    """

    @staticmethod
    def forward(ctx, own_states, weights, layout):
        carried = link_sweep(own_states.clone(), weights, layout)
        ctx.layout = layout
        ctx.save_for_backward(own_states, weights, carried)
        return carried

    @staticmethod
    def backward(ctx, carried_grad):
        layout = ctx.layout
        own_states, weights, carried = ctx.saved_tensors
        if torch.is_grad_enabled():
            # The saved inputs carry their history, so the gradients below stay functions of them.
            ptr, tracked = layout.link_band_ptr, own_states
            for band in range(layout.num_bands):
                lo, hi = ptr[band], ptr[band + 1]
                if lo < hi:
                    rows = tracked[layout.link_src[lo:hi]] * weights[lo:hi, :, None, None]
                    tracked = tracked.index_add(0, layout.link_dst[lo:hi], rows)
            return (*torch.autograd.grad(tracked, (own_states, weights), carried_grad, create_graph=True), None)
        grads = carried_grad.clone()
        weights_grad = torch.zeros_like(weights)
        ptr = layout.link_band_ptr
        for band in range(layout.num_bands - 1, -1, -1):
            lo, hi = ptr[band], ptr[band + 1]
            if lo < hi:
                # The gradients of this band's exports are final: only later bands read them.
                band_grads = grads.index_select(0, layout.link_dst[lo:hi])
                sources = carried.index_select(0, layout.link_src[lo:hi])
                weights_grad[lo:hi] = torch.linalg.vecdot(band_grads.flatten(2), sources.flatten(2))
                grads.index_add_(0, layout.link_src[lo:hi], band_grads.mul_(weights[lo:hi, :, None, None]))
        return grads, weights_grad, None


def solve_pieces(bucket: BandBucket, padded: Tensor, transitions: Tensor, rhs_gates: Tensor, marks: Tensor):
    r"""The dense part of one bucket from its gathered rows (``[H, ...]``, head-major): the rows
    ``[H, P * e, n + b]`` of :math:`[R_S \; R_B]` and the node gating :math:`\mathcal{M} [R_S \; R_B]`
    ``[H, P, n, n + b]``."""
    heads = padded.size(0)
    pieces, n, e, b = bucket.num_pieces, bucket.max_nodes, bucket.max_edges, bucket.max_inputs
    # -(I - A) off the diagonal (the unit diagonal is implicit), and the right-hand side [S | T_inputs].
    transfer = padded.new_zeros(heads, pieces * e * e).index_copy(1, bucket.line_entry, transitions)
    rhs = padded.new_zeros(heads, pieces * e * (n + b)).index_copy(1, bucket.rhs_entry, rhs_gates)
    reach = torch.linalg.solve_triangular(
        transfer.view(heads, pieces, e, e).neg(), rhs.view(heads, pieces, e, n + b), upper=False, unitriangular=True
    )
    reach_rows = reach.reshape(heads, pieces * e, n + b)
    # M R: every edge adds its row of R, times its mark, to the row of its destination.
    gating = padded.new_zeros(heads, pieces * n, n + b).index_add(
        1, bucket.dst_row, reach_rows[:, bucket.edge_row] * marks[..., None]
    )
    return reach_rows, gating.view(heads, pieces, n, n + b)


def banded_output(
    layout: BandLayout, query: Tensor, key: Tensor, value: Tensor, source: Tensor, transition: Tensor, mark: Tensor
) -> Tensor:
    """The propagated (non-direct) output ``[N, H, V]``."""
    num_nodes, heads, key_channels = query.shape
    value_channels = value.size(2)
    channels = [key_channels, key_channels, value_channels]
    buckets = layout.buckets
    # Head-major layouts, so that every [H, pieces] batch of dense problems is a contiguous view; every
    # input is gathered once for all buckets (one gather, and one scatter in the backward pass).
    nodes = torch.cat([query, key, value], dim=2).transpose(0, 1)
    nodes = torch.cat([nodes, nodes.new_zeros(heads, 1, nodes.size(2))], dim=1)
    all_padded = nodes[:, layout.node_map].split([b.num_pieces * b.max_nodes for b in buckets], dim=1)
    all_transitions = transition.t()[:, layout.line_id].split([b.num_line_edges for b in buckets], dim=1)
    all_rhs = torch.cat([source, transition]).t()[:, layout.rhs_id].split([b.num_rhs for b in buckets], dim=1)
    all_marks = mark.t()[:, layout.edge_id].split([b.num_edges for b in buckets], dim=1)
    solved, own_states, input_weights = [], [], []
    for bucket, padded, transitions, rhs_gates, marks in zip(buckets, all_padded, all_transitions, all_rhs, all_marks):
        pieces, n, e, b = bucket.num_pieces, bucket.max_nodes, bucket.max_edges, bucket.max_inputs
        padded = padded.view(heads, pieces, n, -1)
        node_query, node_key, node_value = padded.split(channels, dim=3)
        reach_rows, gating = solve_pieces(bucket, padded, transitions, rhs_gates, marks)
        piece_out = (gating[..., :n] * (node_query @ node_key.transpose(-1, -2))) @ node_value  # [H, P, n, V]
        solved.append((node_query, gating, piece_out))
        # The exports' own parts sum_m R[x, m] k_m v_m^T, and the weights of their pieces' inputs.
        reach = reach_rows[:, bucket.export_row]
        piece = bucket.export_row // e
        weighted_key = reach[..., :n, None] * node_key[:, piece]
        own_states.append(weighted_key.transpose(-1, -2) @ node_value[:, piece])
        input_weights.append(F.pad(reach[..., n:], (0, layout.max_inputs - b)))
    if layout.max_inputs:
        # Export-major [X, H, K, V] (and a zero row for padded inputs), as the link sweep gathers rows.
        own = torch.cat(own_states, 1)[:, layout.export_order].transpose(0, 1)
        weights = torch.cat(input_weights, 1)[:, layout.export_order].permute(1, 2, 0).reshape(-1, heads)
        carried = CarriedStates.apply(own, weights[layout.link_weight], layout)
        carried = torch.cat([carried, carried.new_zeros(1, *carried.shape[1:])])
    outs = []
    for bucket, (node_query, gating, piece_out) in zip(buckets, solved):
        pieces, n, b = bucket.num_pieces, bucket.max_nodes, bucket.max_inputs
        if b:
            feeding = carried[bucket.input_map].view(pieces, b, heads, key_channels, value_channels)
            # q_n^T C_b for every node and input of a piece, weighted by (M R_B)[n, b].
            feeding = feeding.permute(2, 0, 3, 1, 4).reshape(heads, pieces, key_channels, b * value_channels)
            read = (node_query @ feeding).view(heads, pieces, n, b, value_channels)
            piece_out = piece_out + (gating[..., n:, None] * read).sum(3)
        outs.append(piece_out.reshape(heads, pieces * n, value_channels))
    out = query.new_zeros(heads, num_nodes, value_channels)
    if outs:
        out = out.index_add(1, layout.node_id, torch.cat(outs, 1)[:, layout.node_row])
    return out.transpose(0, 1)


def plstm_dag_bands(
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
    propagated = banded_output(plan.bands, query, key, value, source, transition, mark)
    return (direct_term(query, key, value, direct) + propagated).to(dtype)
