r"""The ``"wavefront"`` backend of the grid op: a dense sweep over the :math:`X + Y - 1` anti-diagonals.

The anti-diagonals are :math:`x + y = s`. All cells of a diagonal depend only on the previous one, and in
diagonal order each diagonal is a contiguous slice, so a step is two in-place batched ops over the whole
diagonal, batch and heads. Source terms, readout and all gradient contractions are done for all cells at
once outside the loop. A custom
``autograd.Function`` keeps only the states ``[X*Y, B, H, 2, K, V]`` for backward (or recomputes
them) and builds their gradients with a reverse wavefront sweep (the transposed recurrence); plain
autograd through the loop would keep several intermediates of that size per step and pay for
version-counter bookkeeping on the in-place updates.
"""

import torch
from torch import Tensor

from ...graph.grid import GridWavefronts, grid_wavefronts
from ..common import compute_dtype, direct_term, in_compute_dtype
from .gates import GridGates

__all__ = ["plstm_grid_wavefront", "WavefrontSweep"]


def plstm_grid_wavefront(query: Tensor, key: Tensor, value: Tensor, gates: GridGates, recompute_states: bool) -> Tensor:
    """Reorders the cells diagonal by diagonal, runs :class:`WavefrontSweep`, restores the order and adds
    the direct term (a pointwise op that needs no sweep)."""
    B, X, Y, H, K = query.shape
    dtype = query.dtype
    work = compute_dtype(dtype)
    wavefronts = grid_wavefronts(X, Y, query.device)

    def to_diagonal_order(tensor: Tensor) -> Tensor:
        # [B, X, Y, H, ...] -> [X*Y, B, H, ...]: the cells of a wavefront become one contiguous slice.
        flat = tensor.to(work).reshape(B, X * Y, *tensor.shape[3:])
        return flat.index_select(1, wavefronts.order).transpose(0, 1).contiguous()

    # [X*Y, B, H, 4, 2]: per cell the (r, d) pairs of sources, transitions out of the incoming r-edge
    # (into r, into d), transitions out of the incoming d-edge (into r, into d), and marks.
    stacked = torch.stack(
        [
            gates.source_r,
            gates.source_d,
            gates.transition_rr,
            gates.transition_rd,
            gates.transition_dr,
            gates.transition_dd,
            gates.mark_r,
            gates.mark_d,
        ],
        dim=-1,
    )
    source, transition_from_r, transition_from_d, mark = to_diagonal_order(stacked).unflatten(-1, (4, 2)).unbind(-2)
    readout = WavefrontSweep.apply(
        to_diagonal_order(query),
        to_diagonal_order(key),
        to_diagonal_order(value),
        source,
        transition_from_r,
        transition_from_d,
        mark,
        wavefronts,
        recompute_states,
    )
    readout = readout.transpose(0, 1).index_select(1, wavefronts.inverse).reshape(B, X, Y, H, -1)
    return (readout + direct_term(*in_compute_dtype(query, key, value, gates.direct))).to(dtype)


class Step:
    """Slices of one wavefront step ``s`` in diagonal order (all offsets are positions in ``[X*Y]``).

    The cells of diagonal ``s`` that have an incoming r-edge are ``[right_lo, hi)`` and read the
    r-states ``[prev, prev + hi - right_lo)`` of diagonal ``s - 1``; the cells with an incoming d-edge are
    ``[lo, down_hi)`` and read the d-states ``[down_src, down_src + down_hi - lo)``.
    """

    __slots__ = ("lo", "hi", "prev", "right_lo", "down_hi", "down_src")

    def __init__(self, wavefronts: GridWavefronts, diagonal: int):
        ptr, x_start = wavefronts.ptr, wavefronts.x_start
        self.lo, self.hi = ptr[diagonal], ptr[diagonal + 1]
        first_x = x_start[diagonal]
        last_x = first_x + self.hi - self.lo - 1
        self.prev = ptr[diagonal - 1]
        # (x - 1, y) exists for x >= 1; the first predecessor is always the first cell of diagonal s - 1.
        self.right_lo = self.lo + (1 if first_x == 0 else 0)
        # (x, y - 1) exists for y = s - x >= 1, i.e. not for the last cell when it sits on y = 0.
        self.down_hi = self.hi - (1 if last_x == diagonal else 0)
        self.down_src = self.prev + first_x - x_start[diagonal - 1]

    @property
    def right(self) -> slice:
        return slice(self.right_lo, self.hi)

    @property
    def right_in(self) -> slice:
        return slice(self.prev, self.prev + self.hi - self.right_lo)

    @property
    def down(self) -> slice:
        return slice(self.lo, self.down_hi)

    @property
    def down_in(self) -> slice:
        return slice(self.down_src, self.down_src + self.down_hi - self.lo)


def wavefront_steps(wavefronts: GridWavefronts) -> list[Step]:
    """The steps of diagonals ``1 .. X + Y - 2`` (the corner cell has nothing to receive)."""
    return [Step(wavefronts, diagonal) for diagonal in range(1, len(wavefronts.ptr) - 1)]


def expand(gate: Tensor) -> Tensor:
    """``[..., 2]`` per-direction gates -> ``[..., 2, 1, 1]`` to scale ``K x V`` states."""
    return gate[..., None, None]


def neighbours(table: Tensor, neighbour: Tensor, per_direction: bool) -> Tensor:
    """``[X*Y, B, H, 2, ...]``: for each cell and direction ``d`` the row ``neighbour[p, d]`` of ``table``
    (zero where the neighbour lies outside the grid).

    ``table`` is per cell ``[X*Y, B, H, ...]``, or per edge ``[X*Y, B, H, 2, ...]`` with
    ``per_direction=True`` (then direction ``d`` reads the ``d``-edge of the neighbour)."""
    padded = torch.cat([table, table.new_zeros((1,) + table.shape[1:])])
    rows = [(padded.select(3, d) if per_direction else padded)[neighbour[:, d]] for d in range(2)]
    return torch.stack(rows, dim=3)


def sweep_states(
    steps: list[Step], key: Tensor, value: Tensor, source: Tensor, transition_from_r: Tensor, transition_from_d: Tensor
) -> Tensor:
    """Forward sweep: the states ``[X*Y, B, H, 2, K, V]`` (``[..., 0, :, :]`` r-edges, ``1`` d-edges).

    All source terms are written at once; each step then adds the transported states of the previous
    diagonal in place, two batched ops per step."""
    states = (key[..., :, None] * value[..., None, :]).unsqueeze(3) * expand(source)
    for step in steps:
        if step.hi > step.right_lo:
            cells = step.right
            states[cells].addcmul_(expand(transition_from_r[cells]), states[step.right_in, :, :, 0:1])
        if step.down_hi > step.lo:
            cells = step.down
            states[cells].addcmul_(expand(transition_from_d[cells]), states[step.down_in, :, :, 1:2])
    return states


class WavefrontSweep(torch.autograd.Function):
    r"""The recurrent part of :func:`plstm_grid` on inputs in diagonal order (``[X*Y, B, H, ...]``), with
    per-direction gates ``[X*Y, B, H, 2]``: ``source`` (r, d), ``transition_from_r`` (rr, rd),
    ``transition_from_d`` (dr, dd) and ``mark`` (r, d).

    The readout is done after the sweep for all cells at once: with :math:`n(p)` the neighbour that the
    edge of cell :math:`p` leads to, :math:`q_{n(p)}^\top C_p` is one batched contraction. Backward seeds
    :math:`G_p = M_{n(p)}\, q_{n(p)} \bar{o}_{n(p)}^\top` for all edges at once, then runs the transposed
    recurrence from the last diagonal to the first,

    .. math::
        G^r_{x,y} \mathrel{+}= T^{rr}_{x+1,y} G^r_{x+1,y} + T^{rd}_{x+1,y} G^d_{x+1,y}, \qquad
        G^d_{x,y} \mathrel{+}= T^{dd}_{x,y+1} G^d_{x,y+1} + T^{dr}_{x,y+1} G^r_{x,y+1},

    collecting the transition gradients :math:`\langle G, C_{\mathrm{in}} \rangle` on the way; all other
    input gradients are batched contractions of :math:`G` and :math:`C` after the sweep. The direction axis
    sits after the heads so that every contraction is a batched matrix product on views, without copies.
    """

    @staticmethod
    def forward(
        ctx, query, key, value, source, transition_from_r, transition_from_d, mark, wavefronts, recompute_states
    ):
        steps = wavefront_steps(wavefronts)
        states = sweep_states(steps, key, value, source, transition_from_r, transition_from_d)
        # projections[p, d] = q_{n(p)}^T C_{p, d}, read by the neighbour n(p) that the d-edge leads to.
        next_query = neighbours(query, wavefronts.successor, per_direction=False)
        projections = torch.einsum("pbhdk,pbhdkv->pbhdv", next_query, states)
        readout = (mark[..., None] * neighbours(projections, wavefronts.predecessor, per_direction=True)).sum(3)
        ctx.steps = steps
        ctx.wavefronts = wavefronts
        ctx.recompute_states = recompute_states
        saved = (query, key, value, source, transition_from_r, transition_from_d, mark)
        if recompute_states:
            ctx.save_for_backward(*saved)
        else:
            ctx.save_for_backward(*saved, states)
        return readout

    @staticmethod
    def backward(ctx, readout_grad):
        if torch.is_grad_enabled():
            # The sweeps below update states and gradients in place; differentiating them again would be
            # wrong or fail deep inside autograd, so double backward is refused here.
            raise RuntimeError(
                "plstm_grid(backend='wavefront'): double backward (create_graph=True) is not "
                "supported; use backend='chunkwise' or 'dag'"
            )
        steps, wavefronts = ctx.steps, ctx.wavefronts
        if ctx.recompute_states:
            query, key, value, source, transition_from_r, transition_from_d, mark = ctx.saved_tensors
            states = sweep_states(steps, key, value, source, transition_from_r, transition_from_d)
        else:
            query, key, value, source, transition_from_r, transition_from_d, mark, states = ctx.saved_tensors
        out_grad = readout_grad.contiguous()
        successor, predecessor = wavefronts.successor, wavefronts.predecessor

        # Seeds: neighbour n(p) reads M q^T C_p, so dL/dC_p starts at M q g^T taken at n(p).
        marked_query = neighbours(mark[..., None] * query.unsqueeze(3), successor, per_direction=True)
        next_out_grad = neighbours(out_grad, successor, per_direction=False)  # [P, B, H, 2, V]
        state_grads = marked_query[..., :, None] * next_out_grad[..., None, :]
        transition_from_r_grad = torch.zeros_like(transition_from_r)
        transition_from_d_grad = torch.zeros_like(transition_from_d)
        # Flat K*V views and per-target transition columns, made once: the loop is short on work per op,
        # so every saved Python-level tensor op counts.
        flat_grads, flat_states = state_grads.flatten(-2), states.flatten(-2)
        directions = (
            (0, transition_from_r[..., 0:1], transition_from_r[..., 1:2], transition_from_r_grad),
            (1, transition_from_d[..., 0:1], transition_from_d[..., 1:2], transition_from_d_grad),
        )
        for step in reversed(steps):
            # The gradients of this diagonal are complete; send them back along the incoming edges. The
            # contractions are matrix-vector sized, where elementwise kernels beat batched matmuls.
            for (direction, into_r, into_d, transition_grad), cells, incoming in zip(
                directions, (step.right, step.down), (step.right_in, step.down_in)
            ):
                if cells.stop == cells.start:
                    continue
                grads = flat_grads[cells]  # [n, B, H, 2, K*V]
                transition_grad[cells] = torch.linalg.vecdot(grads, flat_states[incoming, :, :, direction, None])
                incoming_grads = flat_grads[incoming, :, :, direction]
                incoming_grads.addcmul_(into_r[cells], grads[..., 0, :]).addcmul_(into_d[cells], grads[..., 1, :])

        # Source terms S k v^T.
        grads_value = torch.einsum("pbhdkv,pbhv->pbhdk", state_grads, value)
        source_grad = (grads_value * key.unsqueeze(3)).sum(-1)
        key_grad = (grads_value * source[..., None]).sum(3)
        grads_key = torch.einsum("pbhdkv,pbhk->pbhdv", state_grads, key)
        value_grad = (grads_key * source[..., None]).sum(3)
        # Readout M q^T C_in: C_in g per incoming edge, moved to the reading cell.
        states_out_grad = torch.einsum("pbhdkv,pbhdv->pbhdk", states, next_out_grad)
        states_out_grad = neighbours(states_out_grad, predecessor, per_direction=True)
        mark_grad = (states_out_grad * query.unsqueeze(3)).sum(-1)
        query_grad = (states_out_grad * mark[..., None]).sum(3)
        return (
            query_grad,
            key_grad,
            value_grad,
            source_grad,
            transition_from_r_grad,
            transition_from_d_grad,
            mark_grad,
            None,
            None,
        )
