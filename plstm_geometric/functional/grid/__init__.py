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

Backends, one file each:

* ``"wavefront"`` (:mod:`.wavefront`): a dense sweep over the :math:`X + Y - 1` anti-diagonals, with a
  custom autograd function that keeps only the states for backward (or recomputes them).
* ``"chunkwise"`` (:mod:`.chunkwise`): closed form inside :math:`c \times c` chunks as masked attention
  plus boundary terms, the recurrence only between chunks. It keeps about :math:`2KV/c` state numbers per
  cell for backward instead of :math:`2KV`.
* ``"dag"`` (:mod:`.dag`): the adapter that gathers the per-node gates onto the edges and line edges of the
  grid DAG (the batch as a disjoint union of ``B`` grids) and calls ``plstm_dag``; the structure and its
  plan are cached per shape.
* ``"auto"``: see :func:`choose_backend`.

:mod:`.naive` is the reference, one node at a time from the equations. The gates travel as one
:class:`GridGates`.
"""

from collections.abc import Sequence

import torch
from torch import Tensor

from ...checks import check_bool, check_tensor
from ...graph.grid import check_chunk_size
from ..common import all_finite
from ..dag import PARALLEL_MAX_EDGES
from .chunkwise import default_chunk_size, plstm_grid_chunkwise
from .dag import plstm_grid_dag
from .gates import GATE_NAMES, GridGates
from .naive import plstm_grid_naive
from .wavefront import plstm_grid_wavefront

__all__ = [
    "plstm_grid",
    "plstm_grid_oriented",
    "plstm_grid_orientations",
    "plstm_grid_naive",
    "GridGates",
    "GATE_NAMES",
    "GRID_ORIENTATIONS",
    "flip_grid",
    "choose_backend",
    "BACKENDS",
    "TRITON_BACKENDS",
]

BACKENDS = ("auto", "wavefront", "chunkwise", "dag")
TRITON_BACKENDS = ()  # the backends that run Triton kernels: none
ChunkSize = int | tuple[int, int] | None

#: The four corner-to-corner sweeps as ``(flip_x, flip_y)``: from the top-left corner ``(0, 0)``, from
#: ``(X-1, 0)``, from ``(0, Y-1)`` and from ``(X-1, Y-1)``.
GRID_ORIENTATIONS: tuple[tuple[bool, bool], ...] = ((False, False), (True, False), (False, True), (True, True))


def plstm_grid(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    gates: GridGates,
    backend: str = "auto",
    recompute_states: bool = False,
    chunk_size: ChunkSize = None,
) -> Tensor:
    r"""pLSTM over a batch of 2D grids, swept from the corner :math:`(0, 0)` (see the module docstring for
    the equations). No :math:`1/\sqrt{K}` scaling is applied inside the op.

    Args:
        query, key (Tensor): ``[B, X, Y, H, K]``.
        value (Tensor): ``[B, X, Y, H, V]``.
        gates (GridGates): the nine ``[B, X, Y, H]`` gates: sources of the edges leaving each node,
            transitions at each node from its incoming (first letter) to its outgoing (second letter) edge,
            marks of the edges entering each node, and the direct gate.
        backend (str): ``"auto"``, ``"wavefront"``, ``"chunkwise"`` or ``"dag"``.
        recompute_states (bool): drop the ``[B, X, Y, H, K, V]`` cell states after the forward pass and
            recompute them in the backward pass (one more sweep, much less memory between the passes).
        chunk_size (int or tuple, optional): chunk edge lengths :math:`(c_x, c_y)` of the ``"chunkwise"``
            backend; default :func:`~plstm_geometric.functional.grid.chunkwise.default_chunk_size`. Only
            that backend uses it: given with ``backend="auto"`` it selects ``"chunkwise"``, given with
            another backend it raises a :class:`ValueError`.

    Non-finite inputs (NaN, inf) propagate only downstream, with the same pattern on every backend:
    ``"chunkwise"`` runs the wavefront sweep on such inputs. Double backward (``create_graph=True``) is
    supported by ``"chunkwise"`` and ``"dag"``; ``"wavefront"`` raises a ``RuntimeError``.

    Returns:
        ``[B, X, Y, H, V]`` in the dtype of ``query``; 16-bit inputs are computed with float32 states.
    """
    check_grid_inputs(query, key, value, gates)
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    check_bool("recompute_states", recompute_states)
    if chunk_size is not None:
        check_chunk_size(chunk_size)
        if backend == "auto":
            backend = "chunkwise"
        elif backend != "chunkwise":
            raise ValueError(
                f"chunk_size: expected None with backend={backend!r} (only 'chunkwise' uses it), got {chunk_size!r}"
            )
    if backend == "auto":
        backend = choose_backend(*query.shape[:3], query.size(-1), value.size(-1))
    if backend == "dag":
        return plstm_grid_dag(query, key, value, gates, recompute_states)
    # Like plstm_dag, the op sets its own precision; autocast would push its contractions to 16 bits.
    with torch.autocast(query.device.type, enabled=False):
        if backend == "chunkwise" and not all_finite(query, key, value, *gates):
            # The masked attention inside a chunk multiplies structural zeros with every entry (0 * nan):
            # the wavefront sweep keeps a non-finite input downstream of its cell, as the recurrence does.
            backend = "wavefront"
        if backend == "chunkwise":
            if chunk_size is None:
                chunk_size = default_chunk_size(query.size(-1), value.size(-1), query.size(1), query.size(2))
            return plstm_grid_chunkwise(query, key, value, gates, recompute_states, chunk_size)
        return plstm_grid_wavefront(query, key, value, gates, recompute_states)


def plstm_grid_oriented(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    gates: GridGates,
    flip_x: bool = False,
    flip_y: bool = False,
    backend: str = "auto",
    recompute_states: bool = False,
    chunk_size: ChunkSize = None,
) -> Tensor:
    r""":func:`plstm_grid` swept from another corner: flips the inputs, runs, flips the output back.

    All tensors, input and output, stay in the original pixel coordinates. With ``flip_x`` the r-edges
    run :math:`(x, y) \to (x-1, y)`, so in original coordinates ``source_r`` at :math:`(x, y)` feeds the
    edge to :math:`(x-1, y)`, ``mark_r`` reads the edge from :math:`(x+1, y)`, ``transition_rr`` carries
    the edge from :math:`(x+1, y)` into the edge to :math:`(x-1, y)` and ``transition_rd`` turns the edge
    from :math:`(x+1, y)` into the d-edge. "r" always means "along the x sweep", "d" along the y sweep;
    ``flip_y`` mirrors the d-edges the same way. Transitions stay at the node where the edges meet.
    """
    check_gates_type(gates)
    query, key, value = (flip_grid(t, flip_x, flip_y) for t in (query, key, value))
    gates = gates.map(lambda gate: flip_grid(gate, flip_x, flip_y))
    out = plstm_grid(
        query, key, value, gates, backend=backend, recompute_states=recompute_states, chunk_size=chunk_size
    )
    return flip_grid(out, flip_x, flip_y)


def plstm_grid_orientations(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    gates: GridGates,
    orientations: Sequence[tuple[bool, bool]] = GRID_ORIENTATIONS,
    reduce: str = "mean",
    backend: str = "auto",
    recompute_states: bool = False,
    chunk_size: ChunkSize = None,
) -> Tensor:
    r"""Several corner sweeps (:func:`plstm_grid_oriented`) with shared query, key and value.

    The orientations run as one :func:`plstm_grid` call on a batch of ``O * B`` flipped grids, so the
    sweep loop runs once. Each orientation ``o`` has its own gates.

    Args:
        query, key (Tensor): ``[B, X, Y, H, K]``, shared by all orientations.
        value (Tensor): ``[B, X, Y, H, V]``, shared.
        gates (GridGates): ``[O, B, X, Y, H]`` per-orientation gates in original pixel coordinates
            (see :func:`plstm_grid_oriented` for how they map onto edges).
        orientations (sequence): ``O`` pairs ``(flip_x, flip_y)``, default :data:`GRID_ORIENTATIONS`.
        reduce (str): ``"mean"`` or ``"sum"`` over orientations, or ``"none"``. With ``"mean"`` a direct
            gate shared by all orientations contributes once.

    Returns:
        ``[B, X, Y, H, V]``, or ``[O, B, X, Y, H, V]`` with ``reduce="none"``.
    """
    orientations = check_orientations(orientations)
    if reduce not in ("mean", "sum", "none"):
        raise ValueError(f"reduce: expected 'mean', 'sum' or 'none', got {reduce!r}")
    check_gates_type(gates)
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
        flipped = [
            flip_grid(tensor[o] if per_orientation else tensor, *orientation)
            for o, orientation in enumerate(orientations)
        ]
        return torch.cat(flipped, dim=0)

    batch = query.size(0)
    out = plstm_grid(
        *(stack(t, False) for t in (query, key, value)),
        gates.map(lambda g: stack(g, True)),
        backend=backend,
        recompute_states=recompute_states,
        chunk_size=chunk_size,
    )
    out = torch.stack(
        [flip_grid(chunk, *orientation) for chunk, orientation in zip(out.split(batch, dim=0), orientations)]
    )
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

    The thresholds come from forward plus backward timings of the three backends (see
    docs/benchmarks.md).
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


def check_orientations(orientations) -> list[tuple[bool, bool]]:
    def is_pair(item) -> bool:
        return isinstance(item, (tuple, list)) and len(item) == 2 and all(isinstance(v, bool) for v in item)

    if not isinstance(orientations, (tuple, list)) or not orientations or not all(map(is_pair, orientations)):
        raise ValueError(
            f"orientations: expected a non-empty sequence of (flip_x, flip_y) bool pairs, got {orientations!r}"
        )
    return [tuple(pair) for pair in orientations]


def check_gates_type(gates) -> None:
    if not isinstance(gates, GridGates):
        raise TypeError(f"gates: expected a GridGates, got {type(gates).__name__}")


def check_grid_inputs(query: Tensor, key: Tensor, value: Tensor, gates: GridGates) -> None:
    check_gates_type(gates)
    check_tensor("query", query)
    for name, tensor in (("key", key), ("value", value)) + tuple(zip(GATE_NAMES, gates)):
        check_tensor(name if name in ("key", "value") else f"gates.{name}", tensor, query)
    if query.dim() != 5 or query.numel() == 0:
        raise ValueError(f"query: expected a non-empty shape [B, X, Y, H, K], got {tuple(query.shape)}")
    if key.shape != query.shape:
        raise ValueError(f"key: expected shape {tuple(query.shape)} (the shape of query), got {tuple(key.shape)}")
    if value.dim() != 5 or value.shape[:4] != query.shape[:4] or value.size(4) == 0:
        raise ValueError(f"value: expected shape [{', '.join(map(str, query.shape[:4]))}, V], got {tuple(value.shape)}")
    for name, gate in zip(GATE_NAMES, gates):
        if gate.shape != query.shape[:4]:
            raise ValueError(
                f"gates.{name}: expected shape {tuple(query.shape[:4])} ([B, X, Y, H] of query), "
                f"got {tuple(gate.shape)}"
            )
