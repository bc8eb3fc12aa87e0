r"""pLSTM on 2D grids: the grid op with two backends, and the four corner-to-corner orientations.

The grid is the DAG with r-edges :math:`(x, y) \to (x+1, y)` and d-edges :math:`(x, y) \to (x, y+1)`.
Cell states live on the edges: :math:`C^r_{x,y}` on the r-edge leaving :math:`(x, y)`, :math:`C^d_{x,y}`
on its d-edge (both :math:`K \times V`, per head). All gates are given per node; at node :math:`(x, y)`,
with :math:`C^r_{-1, y} = C^d_{x, -1} = 0`:

.. math::
    C^r_{x,y} &= T^{rr}_{x,y} C^r_{x-1,y} + T^{dr}_{x,y} C^d_{x,y-1} + S^r_{x,y}\, k_{x,y} v_{x,y}^\top \\
    C^d_{x,y} &= T^{dd}_{x,y} C^d_{x,y-1} + T^{rd}_{x,y} C^r_{x-1,y} + S^d_{x,y}\, k_{x,y} v_{x,y}^\top \\
    o_{x,y} &= M^r_{x,y}\, q_{x,y}^\top C^r_{x-1,y} + M^d_{x,y}\, q_{x,y}^\top C^d_{x,y-1}
               + D_{x,y}\, (q_{x,y}^\top k_{x,y})\, v_{x,y}

This is exactly :func:`~plstm_geometric.functional.plstm_dag` on the grid DAG of
:func:`~plstm_geometric.graph.grid.grid_dag`. Gates of edges that leave the grid (e.g. :math:`S^r` at
:math:`x = X - 1`) or pairs that do not exist (e.g. :math:`T^{rr}` at :math:`x = 0`) are ignored and get
zero gradients.

Backends:

* ``"wavefront"``: a dense sweep over the :math:`X + Y - 1` anti-diagonals :math:`x + y = s`. All cells of a
  diagonal depend only on the previous one, and in diagonal order each diagonal is a contiguous slice, so
  a step is two in-place batched ops over the whole diagonal, batch and heads. Source terms, readout and
  all gradient contractions are done for all cells at once outside the loop. A custom
  ``autograd.Function`` keeps only the states ``[X*Y, B, H, 2, K, V]`` for backward (or recomputes
  them) and builds their gradients with a reverse wavefront sweep (the transposed recurrence); plain
  autograd through the loop would keep several intermediates of that size per step and pay for
  version-counter bookkeeping on the in-place updates.
* ``"chunkwise"``: the chunkwise form (:mod:`~plstm_geometric.functional.backends.grid_chunkwise`):
  closed form inside :math:`c \times c` chunks as masked attention plus boundary terms, the recurrence
  only between chunks, over the :math:`X/c + Y/c - 1` anti-diagonals of the chunk grid. It keeps about
  :math:`2KV/c` state numbers per cell for backward instead of :math:`2KV`.
* ``"dag"``: the adapter that gathers the per-node gates onto the edges and line edges of the grid DAG
  (the batch as a disjoint union of ``B`` grids) and calls ``plstm_dag``; the structure and its plan are
  cached per shape.
* ``"auto"``: see :func:`choose_backend`.
"""
from typing import List, Sequence, Tuple

import torch
from torch import Tensor

from ..graph.grid import GridWavefronts, check_chunk_size, grid_dag, grid_plan, grid_wavefronts
from .backends.grid_chunkwise import default_chunk_size, plstm_grid_chunkwise
from .backends.levels import compute_dtype, direct_term, in_compute_dtype
from .dag import PARALLEL_MAX_EDGES, plstm_dag

BACKENDS = ("auto", "wavefront", "chunkwise", "dag")
GATE_NAMES = ("source_r", "source_d", "transition_rr", "transition_dd", "transition_rd", "transition_dr",
              "mark_r", "mark_d", "direct")

#: The four corner-to-corner sweeps as ``(flip_x, flip_y)``: from the top-left corner ``(0, 0)``, from
#: ``(X-1, 0)``, from ``(0, Y-1)`` and from ``(X-1, Y-1)``.
GRID_ORIENTATIONS: Tuple[Tuple[bool, bool], ...] = ((False, False), (True, False), (False, True), (True, True))


def plstm_grid(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    source_r: Tensor,
    source_d: Tensor,
    transition_rr: Tensor,
    transition_dd: Tensor,
    transition_rd: Tensor,
    transition_dr: Tensor,
    mark_r: Tensor,
    mark_d: Tensor,
    direct: Tensor,
    backend: str = "auto",
    recompute_states: bool = False,
    chunk_size=None,
) -> Tensor:
    r"""pLSTM over a batch of 2D grids, swept from the corner :math:`(0, 0)` (see the module docstring for
    the equations). No :math:`1/\sqrt{K}` scaling is applied inside the op.

    Args:
        query, key (Tensor): ``[B, X, Y, H, K]``.
        value (Tensor): ``[B, X, Y, H, V]``.
        source_r, source_d (Tensor): ``[B, X, Y, H]`` gates of the edges leaving each node.
        transition_rr, transition_dd, transition_rd, transition_dr (Tensor): ``[B, X, Y, H]`` transitions
            at each node from its incoming (first letter) to its outgoing (second letter) edge.
        mark_r, mark_d (Tensor): ``[B, X, Y, H]`` gates of the edges entering each node.
        direct (Tensor): ``[B, X, Y, H]``.
        backend (str): ``"auto"``, ``"wavefront"``, ``"chunkwise"`` or ``"dag"``.
        recompute_states (bool): drop the ``[B, X, Y, H, K, V]`` cell states after the forward pass and
            recompute them in the backward pass (one more sweep, much less memory between the passes).
        chunk_size (int or tuple, optional): chunk edge lengths :math:`(c_x, c_y)` of the ``"chunkwise"``
            backend; default :func:`~plstm_geometric.functional.backends.grid_chunkwise.default_chunk_size`.

    Returns:
        ``[B, X, Y, H, V]`` in the dtype of ``query``; 16-bit inputs are computed with float32 states.
    """
    check_grid_inputs(query, key, value, source_r, source_d, transition_rr, transition_dd, transition_rd,
                      transition_dr, mark_r, mark_d, direct)
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    if not isinstance(recompute_states, bool):
        raise TypeError(f"recompute_states: expected a bool, got {type(recompute_states).__name__}")
    gates = (source_r, source_d, transition_rr, transition_dd, transition_rd, transition_dr, mark_r, mark_d)
    if backend == "auto":
        backend = choose_backend(*query.shape[:3], query.size(-1), value.size(-1))
    if chunk_size is None:
        chunk_size = default_chunk_size(query.size(-1), value.size(-1), query.size(1), query.size(2))
    check_chunk_size(chunk_size)
    if backend == "dag":
        return plstm_grid_dag(query, key, value, gates, direct, recompute_states)
    # Like plstm_dag, the op sets its own precision; autocast would push its contractions to 16 bits.
    with torch.autocast(query.device.type, enabled=False):
        if backend == "chunkwise":
            return plstm_grid_chunkwise(query, key, value, gates, direct, recompute_states, chunk_size)
        return plstm_grid_wavefront(query, key, value, gates, direct, recompute_states)


def plstm_grid_oriented(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    source_r: Tensor,
    source_d: Tensor,
    transition_rr: Tensor,
    transition_dd: Tensor,
    transition_rd: Tensor,
    transition_dr: Tensor,
    mark_r: Tensor,
    mark_d: Tensor,
    direct: Tensor,
    flip_x: bool = False,
    flip_y: bool = False,
    backend: str = "auto",
    recompute_states: bool = False,
    chunk_size=None,
) -> Tensor:
    r""":func:`plstm_grid` swept from another corner: flips the inputs, runs, flips the output back.

    All tensors, input and output, stay in the original pixel coordinates. With ``flip_x`` the r-edges
    run :math:`(x, y) \to (x-1, y)`, so in original coordinates ``source_r`` at :math:`(x, y)` feeds the
    edge to :math:`(x-1, y)`, ``mark_r`` reads the edge from :math:`(x+1, y)`, ``transition_rr`` carries
    the edge from :math:`(x+1, y)` into the edge to :math:`(x-1, y)` and ``transition_rd`` turns the edge
    from :math:`(x+1, y)` into the d-edge. "r" always means "along the x sweep", "d" along the y sweep;
    ``flip_y`` mirrors the d-edges the same way. Transitions stay at the node where the edges meet.
    """
    tensors = [flip_grid(t, flip_x, flip_y) for t in (
        query, key, value, source_r, source_d, transition_rr, transition_dd, transition_rd, transition_dr,
        mark_r, mark_d, direct)]
    out = plstm_grid(*tensors, backend=backend, recompute_states=recompute_states, chunk_size=chunk_size)
    return flip_grid(out, flip_x, flip_y)


def plstm_grid_orientations(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    source_r: Tensor,
    source_d: Tensor,
    transition_rr: Tensor,
    transition_dd: Tensor,
    transition_rd: Tensor,
    transition_dr: Tensor,
    mark_r: Tensor,
    mark_d: Tensor,
    direct: Tensor,
    orientations: Sequence[Tuple[bool, bool]] = GRID_ORIENTATIONS,
    reduce: str = "mean",
    backend: str = "auto",
    recompute_states: bool = False,
    chunk_size=None,
) -> Tensor:
    r"""Several corner sweeps (:func:`plstm_grid_oriented`) with shared query, key and value.

    The orientations run as one :func:`plstm_grid` call on a batch of ``O * B`` flipped grids, so the
    sweep loop runs once. Each orientation ``o`` has its own gates.

    Args:
        query, key (Tensor): ``[B, X, Y, H, K]``, shared by all orientations.
        value (Tensor): ``[B, X, Y, H, V]``, shared.
        source_r, ..., direct (Tensor): ``[O, B, X, Y, H]`` per-orientation gates in original pixel
            coordinates (see :func:`plstm_grid_oriented` for how they map onto edges).
        orientations (sequence): ``O`` pairs ``(flip_x, flip_y)``, default :data:`GRID_ORIENTATIONS`.
        reduce (str): ``"mean"`` or ``"sum"`` over orientations, or ``"none"``. With ``"mean"`` a direct
            gate shared by all orientations contributes once.

    Returns:
        ``[B, X, Y, H, V]``, or ``[O, B, X, Y, H, V]`` with ``reduce="none"``.
    """
    orientations = check_orientations(orientations)
    if reduce not in ("mean", "sum", "none"):
        raise ValueError(f"reduce: expected 'mean', 'sum' or 'none', got {reduce!r}")
    gates = (source_r, source_d, transition_rr, transition_dd, transition_rd, transition_dr, mark_r, mark_d, direct)
    for name, gate in zip(GATE_NAMES, gates):
        if not isinstance(gate, Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(gate).__name__}")
        if gate.dim() != 5 or gate.size(0) != len(orientations):
            raise ValueError(f"{name}: expected shape [O={len(orientations)}, B, X, Y, H], got {tuple(gate.shape)}")
    for name, tensor in (("query", query), ("key", key), ("value", value)):
        if not isinstance(tensor, Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(tensor).__name__}")
        if tensor.dim() != 5:
            raise ValueError(f"{name}: expected shape [B, X, Y, H, C], got {tuple(tensor.shape)}")

    def stack(tensor: Tensor, per_orientation: bool) -> Tensor:
        flipped = [flip_grid(tensor[o] if per_orientation else tensor, *orientation)
                   for o, orientation in enumerate(orientations)]
        return torch.cat(flipped, dim=0)

    batch = query.size(0)
    out = plstm_grid(*(stack(t, False) for t in (query, key, value)), *(stack(g, True) for g in gates),
                     backend=backend, recompute_states=recompute_states, chunk_size=chunk_size)
    out = torch.stack([flip_grid(chunk, *orientation)
                       for chunk, orientation in zip(out.split(batch, dim=0), orientations)])
    if reduce == "mean":
        return out.mean(0)
    if reduce == "sum":
        return out.sum(0)
    return out


def choose_backend(batch_size: int, X: int, Y: int, key_dim: int, value_dim: int) -> str:
    r"""The backend ``backend="auto"`` uses for a batch of ``X x Y`` grids with ``K = key_dim``,
    ``V = value_dim``.

    * Grids with at most ``PARALLEL_MAX_EDGES`` edges (about 8x8): ``"dag"``, which solves each grid in
      closed form with ``plstm_dag``'s ``"parallel"`` backend, while the batch has at most 512 cells;
      ``"chunkwise"`` for larger batches.
    * Larger grids: ``"chunkwise"`` when :math:`KV \ge 1024`, or :math:`KV \ge 256` on grids of at
      least 400 cells; else ``"wavefront"``.

    Measured on CPU, one thread, forward plus backward, 3 heads (``python -m
    plstm_geometric.benchmarks.grid``, 2026-11-23, tables in docs/benchmarks.md). 8x8 grids at K = V = 16:
    at batch 1 the dag solve took 2 to 3 ms against 4 to 7 for the others; at batch 16 and 64 the chunkwise
    form (one chunk per grid) was 1.9x to 2.6x faster than both. The chunkwise form against the wavefront:
    2.1x faster at 24x24, K = V = 64, 6.2x at 12x12, K = V = 64, 1.2x at 24x24, K = V = 16 with a quarter
    less memory; 1.2x to 1.4x slower at 14x14, K = V = 16 and at 24x24, K = V = 8.
    """
    edges_per_grid = (X - 1) * Y + X * (Y - 1)
    state_size = key_dim * value_dim
    if edges_per_grid <= PARALLEL_MAX_EDGES:
        return "dag" if batch_size * X * Y <= 512 else "chunkwise"
    if state_size >= 1024 or (state_size >= 256 and X * Y >= 400):
        return "chunkwise"
    return "wavefront"


def flip_grid(tensor: Tensor, flip_x: bool, flip_y: bool) -> Tensor:
    """Mirrors a ``[B, X, Y, ...]`` tensor along ``X`` and/or ``Y``; flipping twice is the identity."""
    dims = [dim for dim, flip in ((1, flip_x), (2, flip_y)) if flip]
    return tensor.flip(dims) if dims else tensor


def check_orientations(orientations) -> List[Tuple[bool, bool]]:
    def is_pair(item) -> bool:
        return isinstance(item, (tuple, list)) and len(item) == 2 and all(isinstance(v, bool) for v in item)

    if not isinstance(orientations, (tuple, list)) or not orientations or not all(map(is_pair, orientations)):
        raise ValueError(f"orientations: expected a non-empty sequence of (flip_x, flip_y) bool pairs, "
                         f"got {orientations!r}")
    return [tuple(pair) for pair in orientations]


def check_grid_inputs(query, key, value, *gates) -> None:
    tensors = (("query", query), ("key", key), ("value", value)) + tuple(zip(GATE_NAMES, gates))
    for name, tensor in tensors:
        if not isinstance(tensor, Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(tensor).__name__}")
        if not tensor.is_floating_point():
            raise TypeError(f"{name}: expected a floating-point tensor, got {tensor.dtype}")
        if tensor.dtype != query.dtype:
            raise TypeError(f"{name}: expected dtype {query.dtype} (the dtype of query), got {tensor.dtype}")
        if tensor.device != query.device:
            raise ValueError(f"{name}: expected device {query.device} (the device of query), got {tensor.device}")
    if query.dim() != 5 or query.numel() == 0:
        raise ValueError(f"query: expected a non-empty shape [B, X, Y, H, K], got {tuple(query.shape)}")
    if key.shape != query.shape:
        raise ValueError(f"key: expected shape {tuple(query.shape)} (the shape of query), got {tuple(key.shape)}")
    if value.dim() != 5 or value.shape[:4] != query.shape[:4] or value.size(4) == 0:
        raise ValueError(f"value: expected shape [{', '.join(map(str, query.shape[:4]))}, V], "
                         f"got {tuple(value.shape)}")
    for name, gate in zip(GATE_NAMES, gates):
        if gate.shape != query.shape[:4]:
            raise ValueError(f"{name}: expected shape {tuple(query.shape[:4])} ([B, X, Y, H] of query), "
                             f"got {tuple(gate.shape)}")


def plstm_grid_dag(query, key, value, gates, direct, recompute_states) -> Tensor:
    """The grid as a disjoint union of ``B`` grid DAGs, run by ``plstm_dag``."""
    B, X, Y, H, K = query.shape
    num_nodes = B * X * Y
    grid = grid_dag(X, Y, query.device, batch_size=B)
    plan = grid_plan(X, Y, query.device, batch_size=B)
    source_r, source_d, transition_rr, transition_dd, transition_rd, transition_dr, mark_r, mark_d = gates
    # Per-node gate tables in the layout the index maps of GridDAG point into.
    source = torch.stack([source_r, source_d], dim=3).reshape(num_nodes * 2, H)[grid.edge_source]
    mark = torch.stack([mark_r, mark_d], dim=3).reshape(num_nodes * 2, H)[grid.edge_mark]
    transition = torch.stack([transition_rr, transition_dd, transition_rd, transition_dr], dim=3)
    transition = transition.reshape(num_nodes * 4, H)[grid.line_transition]
    out = plstm_dag(
        query.reshape(num_nodes, H, K), key.reshape(num_nodes, H, K), value.reshape(num_nodes, H, -1),
        source, transition, mark, direct.reshape(num_nodes, H), grid.edge_index, grid.line_edge_index,
        plan=plan, recompute_states=recompute_states)
    return out.view(B, X, Y, H, -1)


def plstm_grid_wavefront(query, key, value, gates, direct, recompute_states) -> Tensor:
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

    source_r, source_d, transition_rr, transition_dd, transition_rd, transition_dr, mark_r, mark_d = gates
    # [X*Y, B, H, 4, 2]: per cell the (r, d) pairs of sources, transitions out of the incoming r-edge
    # (into r, into d), transitions out of the incoming d-edge (into r, into d), and marks.
    stacked = torch.stack([source_r, source_d, transition_rr, transition_rd, transition_dr, transition_dd,
                           mark_r, mark_d], dim=-1)
    source, transition_from_r, transition_from_d, mark = to_diagonal_order(stacked).unflatten(-1, (4, 2)).unbind(-2)
    readout = WavefrontSweep.apply(
        to_diagonal_order(query), to_diagonal_order(key), to_diagonal_order(value),
        source, transition_from_r, transition_from_d, mark, wavefronts, recompute_states)
    readout = readout.transpose(0, 1).index_select(1, wavefronts.inverse).reshape(B, X, Y, H, -1)
    return (readout + direct_term(*in_compute_dtype(query, key, value, direct))).to(dtype)


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


def wavefront_steps(wavefronts: GridWavefronts) -> List[Step]:
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


def sweep_states(steps: List[Step], key: Tensor, value: Tensor, source: Tensor, transition_from_r: Tensor,
                 transition_from_d: Tensor) -> Tensor:
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
    def forward(ctx, query, key, value, source, transition_from_r, transition_from_d, mark, wavefronts,
                recompute_states):
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
            (1, transition_from_d[..., 0:1], transition_from_d[..., 1:2], transition_from_d_grad))
        for step in reversed(steps):
            # The gradients of this diagonal are complete; send them back along the incoming edges. The
            # contractions are matrix-vector sized, where elementwise kernels beat batched matmuls.
            for (direction, into_r, into_d, transition_grad), cells, incoming in zip(
                    directions, (step.right, step.down), (step.right_in, step.down_in)):
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
        return (query_grad, key_grad, value_grad, source_grad, transition_from_r_grad, transition_from_d_grad,
                mark_grad, None, None)
