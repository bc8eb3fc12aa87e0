r"""The chunkwise form of the grid pLSTM: closed form inside chunks, recurrence between chunks.

The grid is cut into :math:`c_x \times c_y` chunks (:class:`~plstm_geometric.graph.grid.GridChunks`). The
recurrence is linear, so inside a chunk every cell state and every readout is a weighted sum of the chunk's
*units*: the :math:`P = c_x c_y` source terms :math:`k_m v_m^\top` and the :math:`c_x + c_y` states
:math:`Z_b` on the edges that enter the chunk. Per batch element and head:

.. math::
    o_n &= \sum_{m} R_{nm}\, (q_n^\top k_m)\, v_m + \sum_b R_{nb}\, q_n^\top Z_b \\
    Z^{\mathrm{out}}_{b'} &= \sum_m W_{b'm}\, k_m v_m^\top + \sum_b W_{b'b}\, Z_b

:math:`R` (readout) and :math:`W` (outgoing boundary) are products of transitions, sources and marks
along the paths inside the chunk. They are scalars per unit, so they are computed by a wavefront over the
chunk's anti-diagonals on ``[..., U]`` weight vectors instead of ``K x V`` states, for all chunks at once.
Then only the boundary states travel between chunks, one chunk anti-diagonal at a time, and everything
else is batched matrix products, the first sum being masked attention :math:`((Q K^\top) \odot R) V`.

Memory: the dense wavefront keeps all :math:`2XY` edge states for backward, :math:`2KV` numbers per cell.
This form keeps the :math:`c_x + c_y` states entering each chunk, about :math:`2KV/c` per cell for
:math:`c \times c` chunks, plus unit weights of a few times :math:`U = c^2 + 2c` per cell that do not grow
with :math:`KV`; the two contractions with boundary states rebuild their large elementwise operand in
backward (:class:`RowOuterMatmul`) instead of storing it. Large chunks trade state memory for
:math:`P \times U` weights and :math:`P \times P` scores; the whole grid as one chunk is the parallel
(quadratic) form. Backward is autograd through these batched ops; ``recompute_states`` wraps the whole
form in activation checkpointing, so only the inputs are kept.
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from ...graph.grid import GridChunks, grid_chunks
from ..common import direct_term, in_compute_dtype
from .gates import GATE_NAMES, GridGates

__all__ = ["plstm_grid_chunkwise", "default_chunk_size", "WHOLE_GRID_MAX_CELLS"]

#: Grids with at most this many cells are one chunk (the parallel form), which measured faster than
#: smaller chunks on such grids (see docs/benchmarks.md).
WHOLE_GRID_MAX_CELLS = 144


def default_chunk_size(key_dim: int, value_dim: int, X: int, Y: int) -> tuple:
    r"""Chunk sides :math:`(c_x, c_y)` for an ``X x Y`` grid: the whole grid when it has at most
    ``WHOLE_GRID_MAX_CELLS`` cells, else sides near :math:`t = (K V)^{1/4}` (at least 2) with as little
    padding as possible.

    Per cell, the in-chunk weights and scores cost about :math:`c^2` and the boundary contractions about
    :math:`c K V`, so the best side grows slowly with :math:`KV`. Padded cells cost as much as real ones,
    so each side takes, among the sizes from :math:`0.75\, t` to :math:`1.5\, t`, the one that pads its
    axis least, then the one nearest :math:`t`, then the larger. The measurements behind the rule are in
    docs/benchmarks.md.
    """
    if X * Y <= WHOLE_GRID_MAX_CELLS:
        return X, Y
    target = max(2.0, (key_dim * value_dim) ** 0.25)

    def side(length: int) -> int:
        candidates = range(max(2, math.ceil(0.75 * target)), math.floor(1.5 * target) + 1)
        best = min(candidates, key=lambda size: (-(-length // size) * size, abs(size - target), -size))
        return min(best, length)

    return side(X), side(Y)


def plstm_grid_chunkwise(
    query: Tensor, key: Tensor, value: Tensor, gates: GridGates, recompute_states: bool, chunk_size
) -> Tensor:
    """``[B, X, Y, H, V]`` output of :func:`~plstm_geometric.functional.plstm_grid` by the chunkwise form;
    inputs are validated by the caller."""
    B, X, Y, H, _ = query.shape
    dtype = query.dtype
    schedule = grid_chunks(X, Y, chunk_size, query.device)
    query, key, value = in_compute_dtype(query, key, value)
    gates = gates.map(lambda gate: gate.to(query.dtype))
    chunked = [to_chunks(t, schedule) for t in (query, key, value)]
    # Passed by name: chunkwise_readout cannot receive the gates in another order.
    chunked_gates = {name: to_chunks(getattr(gates, name), schedule) for name in GATE_NAMES if name != "direct"}
    if recompute_states:
        readout = checkpoint(chunkwise_readout, schedule, *chunked, use_reentrant=False, **chunked_gates)
    else:
        readout = chunkwise_readout(schedule, *chunked, **chunked_gates)
    return (from_chunks(readout, schedule, B, X, Y, H) + direct_term(query, key, value, gates.direct)).to(dtype)


def to_chunks(tensor: Tensor, schedule: GridChunks) -> Tensor:
    """``[B, X, Y, H, ...]`` -> ``[C, B, H, P, ...]``, chunks and their cells in anti-diagonal order,
    zero-padded to whole chunks."""
    (chunk_x, chunk_y), (num_x, num_y) = schedule.chunk_size, schedule.num_chunks
    B, X, Y, H = tensor.shape[:4]
    trailing = tensor.shape[4:]
    padding = [0, 0] * (len(trailing) + 1) + [0, num_y * chunk_y - Y, 0, num_x * chunk_x - X]
    tensor = F.pad(tensor, padding).view(B, num_x, chunk_x, num_y, chunk_y, H, *trailing)
    tensor = tensor.permute(1, 3, 0, 5, 2, 4, *range(6, 6 + len(trailing)))
    tensor = tensor.reshape(num_x * num_y, B, H, chunk_x * chunk_y, *trailing)
    return tensor.index_select(0, schedule.chunks.order).index_select(3, schedule.cells.order)


def from_chunks(tensor: Tensor, schedule: GridChunks, B: int, X: int, Y: int, H: int) -> Tensor:
    """Inverse of :func:`to_chunks` for ``[C, B, H, P, V]``: back to ``[B, X, Y, H, V]``, padding cropped."""
    (chunk_x, chunk_y), (num_x, num_y) = schedule.chunk_size, schedule.num_chunks
    tensor = tensor.index_select(3, schedule.cells.inverse).index_select(0, schedule.chunks.inverse)
    tensor = tensor.view(num_x, num_y, B, H, chunk_x, chunk_y, -1).permute(2, 0, 4, 1, 5, 3, 6)
    return tensor.reshape(B, num_x * chunk_x, num_y * chunk_y, H, -1)[:, :X, :Y]


def unit_weights(
    schedule: GridChunks, source_r, source_d, transition_rr, transition_dd, transition_rd, transition_dr, mark_r, mark_d
):
    r"""Readout weights ``[C, B, H, P, U]`` (:math:`R`) and outgoing boundary weights ``[C, B, H, c_x + c_y,
    U]`` (:math:`W`) of every chunk, from chunk-layout gates ``[C, B, H, P]``.

    The wavefront runs the grid recurrence with a weight vector over the units in place of each ``K x V``
    state: the r-edge leaving cell :math:`p` carries :math:`T^{rr}_p w^r_{\mathrm{in}} + T^{dr}_p
    w^d_{\mathrm{in}} + S^r_p e_p`, the readout of :math:`p` is :math:`M^r_p w^r_{\mathrm{in}} + M^d_p
    w^d_{\mathrm{in}}`, where an incoming edge from outside the chunk is its boundary unit vector.
    """
    cells = schedule.cells
    num_cells = cells.order.numel()
    identity = torch.eye(num_cells + sum(schedule.chunk_size), dtype=source_r.dtype, device=source_r.device)
    batch_shape = source_r.shape[:3]
    boundary_units = identity[num_cells:].expand(*batch_shape, -1, -1)
    right_weights, down_weights, readout_weights = [], [], []
    previous_right = previous_down = boundary_units[..., :0, :]
    # One split per diagonal instead of slicing each gate: the backward of a split is one concatenation,
    # that of a slice a zero-filled gradient as large as the whole gate.
    diagonal_sizes = [hi - lo for lo, hi in zip(cells.ptr[:-1], cells.ptr[1:])]
    gates = torch.stack(
        [source_r, source_d, transition_rr, transition_dd, transition_rd, transition_dr, mark_r, mark_d], dim=-1
    ).unsqueeze(-1)
    source_units_by_diagonal = identity[:num_cells].split(diagonal_sizes)
    for right_in, down_in, source_units, diagonal_gates in zip(
        schedule.right_in, schedule.down_in, source_units_by_diagonal, gates.split(diagonal_sizes, dim=3)
    ):
        incoming_right = torch.cat([previous_right, boundary_units], dim=3).index_select(3, right_in)
        incoming_down = torch.cat([previous_down, boundary_units], dim=3).index_select(3, down_in)
        (source_r, source_d, transition_rr, transition_dd, transition_rd, transition_dr, mark_r, mark_d) = (
            diagonal_gates.unbind(-2)
        )
        previous_right = transition_rr * incoming_right + transition_dr * incoming_down + source_r * source_units
        previous_down = transition_dd * incoming_down + transition_rd * incoming_right + source_d * source_units
        right_weights.append(previous_right)
        down_weights.append(previous_down)
        readout_weights.append(mark_r * incoming_right + mark_d * incoming_down)
    chunk_y = schedule.chunk_size[1]
    outgoing = torch.cat(
        [
            torch.cat(right_weights, dim=3).index_select(3, schedule.outgoing[:chunk_y]),
            torch.cat(down_weights, dim=3).index_select(3, schedule.outgoing[chunk_y:]),
        ],
        dim=3,
    )
    return torch.cat(readout_weights, dim=3), outgoing


class RowOuterMatmul(torch.autograd.Function):
    r"""``(A @ other)`` or ``(A^T @ other)`` for :math:`A_{n, (b, k)} = r_{nb}\, s_{nk}`, without keeping
    :math:`A` for backward.

    :math:`A` is as large as the boundary states it multiplies, but it is an elementwise product of two
    small factors, so backward rebuilds it instead of autograd storing it.
    """

    @staticmethod
    def forward(ctx, rows: Tensor, scales: Tensor, other: Tensor, transposed: bool) -> Tensor:
        ctx.save_for_backward(rows, scales, other)
        ctx.transposed = transposed
        outer = RowOuterMatmul.outer(rows, scales)
        return (outer.transpose(-1, -2) if transposed else outer) @ other

    @staticmethod
    def outer(rows: Tensor, scales: Tensor) -> Tensor:
        return (rows.unsqueeze(-1) * scales.unsqueeze(-2)).flatten(-2)

    @staticmethod
    def backward(ctx, out_grad):
        rows, scales, other = ctx.saved_tensors
        outer = RowOuterMatmul.outer(rows, scales)
        if ctx.transposed:
            outer_grad, other_grad = other @ out_grad.transpose(-1, -2), outer @ out_grad
        else:
            outer_grad, other_grad = out_grad @ other.transpose(-1, -2), outer.transpose(-1, -2) @ out_grad
        outer_grad = outer_grad.unflatten(-1, (rows.size(-1), scales.size(-1)))
        rows_grad = (outer_grad * scales.unsqueeze(-2)).sum(-1)
        scales_grad = (outer_grad * rows.unsqueeze(-1)).sum(-2)
        return rows_grad, scales_grad, other_grad, None


def boundary_sweep(
    schedule: GridChunks,
    local_outgoing: Tensor,
    boundary_weights: Tensor,
    boundary_readout_weights: Tensor,
    query: Tensor,
) -> Tensor:
    r"""Readout ``[C, B, H, P, V]`` of the states entering each chunk, chunk anti-diagonal by
    anti-diagonal.

    A chunk's incoming states come from the r-edges of its left neighbour and the d-edges of the one
    above it (zero at the grid's first row and column); its outgoing states are ``local_outgoing`` plus
    ``boundary_weights @`` the incoming ones. Each cell reads :math:`\sum_b R_{nb}\, q_n^\top Z_b`
    (``boundary_readout_weights`` :math:`R`), done per diagonal so that the incoming states are kept once
    for backward.
    """
    chunks, (chunk_x, chunk_y) = schedule.chunks, schedule.chunk_size
    state_shape = local_outgoing.shape[1:]
    # Per-diagonal pieces by one split each (see unit_weights).
    diagonal_sizes = [hi - lo for lo, hi in zip(chunks.ptr[:-1], chunks.ptr[1:])]
    local_outgoing, boundary_weights, boundary_readout_weights, query = (
        tensor.split(diagonal_sizes) for tensor in (local_outgoing, boundary_weights, boundary_readout_weights, query)
    )
    readouts = [query[0].new_zeros(query[0].shape[:-1] + state_shape[-1:])]
    outgoing = local_outgoing[0]
    for diagonal in range(1, len(diagonal_sizes)):
        # r-edges leave towards the right neighbour, d-edges towards the one below; a missing neighbour
        # reads the appended zero row.
        incoming = []
        for states, neighbour in zip(outgoing.split([chunk_y, chunk_x], dim=3), schedule.chunk_in[diagonal]):
            table = torch.cat([states, states.new_zeros((1,) + states.shape[1:])])
            incoming.append(table.index_select(0, neighbour))
        incoming = torch.cat(incoming, dim=3)
        readouts.append(
            RowOuterMatmul.apply(boundary_readout_weights[diagonal], query[diagonal], incoming.flatten(3, 4), False)
        )
        outgoing = local_outgoing[diagonal] + torch.einsum("cbhij,cbhjkv->cbhikv", boundary_weights[diagonal], incoming)
    return torch.cat(readouts)


def chunkwise_readout(
    schedule: GridChunks,
    query,
    key,
    value,
    source_r,
    source_d,
    transition_rr,
    transition_dd,
    transition_rd,
    transition_dr,
    mark_r,
    mark_d,
) -> Tensor:
    """Readout ``[C, B, H, P, V]`` (without the direct term) from chunk-layout inputs."""
    num_cells = query.size(3)
    readout_weights, outgoing_weights = unit_weights(
        schedule, source_r, source_d, transition_rr, transition_dd, transition_rd, transition_dr, mark_r, mark_d
    )
    units = [num_cells, outgoing_weights.size(-1) - num_cells]
    node_readout_weights, boundary_readout_weights = readout_weights.split(units, dim=-1)
    node_outgoing_weights, boundary_weights = outgoing_weights.split(units, dim=-1)
    # Sources inside the chunk: masked attention, and their part of the outgoing boundary states,
    # sum_m W_bm k_m v_m^T = ([m, (b, k)] rows W_mb k_m)^T @ v.
    scores = (query @ key.transpose(-1, -2)) * node_readout_weights
    local_outgoing = RowOuterMatmul.apply(node_outgoing_weights.transpose(-1, -2), key, value, True)
    local_outgoing = local_outgoing.unflatten(3, (-1, key.size(-1)))  # [C, B, H, b, K, V]
    return scores @ value + boundary_sweep(schedule, local_outgoing, boundary_weights, boundary_readout_weights, query)
