r"""The 2D grid as a pLSTM DAG: edges, line graph, gate index maps and the anti-diagonal schedule.

Node :math:`(x, y)` of an :math:`X \times Y` grid has id :math:`n = xY + y`. Its outgoing edges are the
*r-edge* :math:`(x, y) \to (x+1, y)` and the *d-edge* :math:`(x, y) \to (x, y+1)`. Every node is a crossing
of at most two incoming and two outgoing edges, so the line graph has at most four pairs per node:

====== ================ =================== =====
kind   incoming edge    outgoing edge       code
====== ================ =================== =====
``rr`` from (x-1, y)    to (x+1, y)         0
``dd`` from (x, y-1)    to (x, y+1)         1
``rd`` from (x-1, y)    to (x, y+1)         2
``dr`` from (x, y-1)    to (x+1, y)         3
====== ================ =================== =====

Per-node gates are mapped onto edges and line edges by integer index maps into flattened gate tables:
sources ``[num_nodes, 2]`` (column 0: r, 1: d) are read at the *source* node of an edge, marks
``[num_nodes, 2]`` at its *destination* node, and transitions ``[num_nodes, 4]`` (columns in the code
order above) at the node where the two edges of a pair meet.

All structures are built once per shape on the CPU and cached (the returned tensors are shared between
callers and must not be modified in place).
"""

import functools
from typing import NamedTuple

import torch
from torch import Tensor

from .dag import inverse_order
from .plan import PLSTMPlan, build_plan

RIGHT, DOWN = 0, 1
TRANSITION_KINDS = ("rr", "dd", "rd", "dr")


class GridDAG(NamedTuple):
    r"""Integer structure of ``batch_size`` disjoint :math:`X \times Y` grids (image ``b`` holds nodes
    ``b * X * Y`` to ``(b + 1) * X * Y - 1``).

    Attributes:
        edge_index (LongTensor): ``[2, E]`` edges, sorted by source node, then destination.
        line_edge_index (LongTensor): ``[2, L]`` pairs ``(e_in, e_out)`` meeting at a node.
        edge_source (LongTensor): ``[E]`` row of each edge's source gate in the flattened
            ``[num_nodes * 2]`` table (``2 * src + direction``).
        edge_mark (LongTensor): ``[E]`` row of each edge's mark gate (``2 * dst + direction``).
        line_transition (LongTensor): ``[L]`` row of each pair's transition in the flattened
            ``[num_nodes * 4]`` table (``4 * node + kind``).
        node_level (LongTensor): ``[num_nodes]`` topological level :math:`x + y`.
    """

    edge_index: Tensor
    line_edge_index: Tensor
    edge_source: Tensor
    edge_mark: Tensor
    line_transition: Tensor
    node_level: Tensor

    def to(self, device) -> "GridDAG":
        return GridDAG(*(tensor.to(device) for tensor in self))


class GridWavefronts(NamedTuple):
    r"""Anti-diagonal schedule of one :math:`X \times Y` grid.

    Cells are listed diagonal by diagonal (:math:`s = x + y = 0, \dots, X + Y - 2`), by increasing
    :math:`x` inside a diagonal, so every wavefront is a contiguous slice ``ptr[s]:ptr[s + 1]``.

    Attributes:
        order (LongTensor): ``[X * Y]`` node id (``x * Y + y``) of each position in diagonal order.
        inverse (LongTensor): ``[X * Y]`` position of each node id in diagonal order.
        successor (LongTensor): ``[X * Y, 2]`` position of the node that the r-edge (column 0) / d-edge
            (column 1) of each position leads to, ``X * Y`` where that edge would leave the grid.
        predecessor (LongTensor): ``[X * Y, 2]`` position of the node whose r-edge / d-edge enters each
            position, ``X * Y`` where there is none (first column / first row).
        ptr (list[int]): ``X + Y`` slice boundaries.
        x_start (list[int]): smallest :math:`x` on each diagonal.
    """

    order: Tensor
    inverse: Tensor
    successor: Tensor
    predecessor: Tensor
    ptr: list[int]
    x_start: list[int]

    def to(self, device) -> "GridWavefronts":
        return GridWavefronts(
            self.order.to(device),
            self.inverse.to(device),
            self.successor.to(device),
            self.predecessor.to(device),
            self.ptr,
            self.x_start,
        )


def check_grid_size(X, Y) -> None:
    for name, size in (("X", X), ("Y", Y)):
        if not isinstance(size, int) or isinstance(size, bool):
            raise TypeError(f"{name}: expected an int, got {type(size).__name__}")
        if size < 1:
            raise ValueError(f"{name}: expected a positive grid size, got {size}")


def check_batch_size(batch_size) -> None:
    if not isinstance(batch_size, int) or isinstance(batch_size, bool):
        raise TypeError(f"batch_size: expected an int, got {type(batch_size).__name__}")
    if batch_size < 1:
        raise ValueError(f"batch_size: expected a positive int, got {batch_size}")


def normalize_device(device) -> torch.device:
    return torch.device("cpu") if device is None else torch.device(device)


def grid_dag(X: int, Y: int, device=None, *, batch_size: int = 1) -> GridDAG:
    r"""The :math:`X \times Y` grid DAG (r-edges :math:`(x, y) \to (x+1, y)`, d-edges
    :math:`(x, y) \to (x, y+1)`), its full line graph and the gate index maps, see :class:`GridDAG`.

    With ``batch_size > 1`` the result describes ``batch_size`` disjoint copies, matching gates laid out as
    ``[batch_size, X, Y, ...]`` and flattened. Cached per ``(X, Y, device, batch_size)``.
    """
    check_grid_size(X, Y)
    check_batch_size(batch_size)
    return _grid_dag_on(X, Y, normalize_device(device), batch_size)


def grid_plan(X: int, Y: int, device=None, *, batch_size: int = 1) -> PLSTMPlan:
    """The :class:`~plstm_geometric.graph.PLSTMPlan` of :func:`grid_dag` (same arguments), cached.

    Built from the known levels :math:`x + y`, so no topological sort is needed.
    """
    check_grid_size(X, Y)
    check_batch_size(batch_size)
    return _grid_plan_on(X, Y, normalize_device(device), batch_size)


def grid_wavefronts(X: int, Y: int, device=None) -> GridWavefronts:
    """The anti-diagonal schedule of an ``X x Y`` grid, see :class:`GridWavefronts`. Cached."""
    check_grid_size(X, Y)
    return _grid_wavefronts_on(X, Y, normalize_device(device))


@functools.lru_cache(maxsize=32)
def _grid_dag_on(X: int, Y: int, device: torch.device, batch_size: int) -> GridDAG:
    return _grid_dag_cpu(X, Y, batch_size).to(device)


@functools.lru_cache(maxsize=32)
def _grid_plan_on(X: int, Y: int, device: torch.device, batch_size: int) -> PLSTMPlan:
    grid = _grid_dag_cpu(X, Y, batch_size)
    plan = build_plan(grid.edge_index, grid.line_edge_index, batch_size * X * Y, node_level=grid.node_level)
    return plan.to(device)


@functools.lru_cache(maxsize=32)
def _grid_wavefronts_on(X: int, Y: int, device: torch.device) -> GridWavefronts:
    return _grid_wavefronts_cpu(X, Y).to(device)


@functools.lru_cache(maxsize=32)
def _grid_dag_cpu(X: int, Y: int, batch_size: int) -> GridDAG:
    if batch_size > 1:
        return _replicate(_grid_dag_cpu(X, Y, 1), batch_size, X * Y)
    node = torch.arange(X * Y).view(X, Y)
    right_src, down_src = node[:-1, :].reshape(-1), node[:, :-1].reshape(-1)
    src = torch.cat([right_src, down_src])
    dst = torch.cat([right_src + Y, down_src + 1])
    direction = torch.cat([torch.full_like(right_src, RIGHT), torch.full_like(down_src, DOWN)])
    # Sort by (src, dst) like dagify, so both produce the same edge order for the same graph.
    edge_order = torch.sort(src * (X * Y) + dst, stable=True).indices
    src, dst, direction = src[edge_order], dst[edge_order], direction[edge_order]

    # Outgoing edge id per (node, direction), -1 where the edge leaves the grid.
    outgoing = torch.full((X * Y, 2), -1, dtype=torch.long)
    outgoing[src, direction] = torch.arange(src.numel())
    incoming = torch.full((X * Y, 2), -1, dtype=torch.long)
    incoming[dst, direction] = torch.arange(src.numel())

    e_in, e_out, transition = [], [], []
    for kind, (in_direction, out_direction) in enumerate(((RIGHT, RIGHT), (DOWN, DOWN), (RIGHT, DOWN), (DOWN, RIGHT))):
        meet = (incoming[:, in_direction] >= 0) & (outgoing[:, out_direction] >= 0)
        at = meet.nonzero().view(-1)
        e_in.append(incoming[at, in_direction])
        e_out.append(outgoing[at, out_direction])
        transition.append(at * 4 + kind)
    e_in, e_out, transition = torch.cat(e_in), torch.cat(e_out), torch.cat(transition)
    line_order = torch.sort(e_out * src.numel() + e_in, stable=True).indices

    coords = torch.arange(X * Y)
    return GridDAG(
        edge_index=torch.stack([src, dst]),
        line_edge_index=torch.stack([e_in[line_order], e_out[line_order]]),
        edge_source=src * 2 + direction,
        edge_mark=dst * 2 + direction,
        line_transition=transition[line_order],
        node_level=coords // Y + coords % Y,
    )


def _replicate(grid: GridDAG, batch_size: int, num_nodes: int) -> GridDAG:
    """``batch_size`` disjoint copies: every index is shifted by the size of the table it points into."""
    num_edges = grid.edge_index.size(1)

    def repeat(index: Tensor, stride: int) -> Tensor:
        offsets = torch.arange(batch_size) * stride
        return (index.unsqueeze(-2) + offsets.unsqueeze(-1)).flatten(-2)

    return GridDAG(
        edge_index=repeat(grid.edge_index, num_nodes),
        line_edge_index=repeat(grid.line_edge_index, num_edges),
        edge_source=repeat(grid.edge_source, 2 * num_nodes),
        edge_mark=repeat(grid.edge_mark, 2 * num_nodes),
        line_transition=repeat(grid.line_transition, 4 * num_nodes),
        node_level=grid.node_level.repeat(batch_size),
    )


def _grid_wavefronts_cpu(X: int, Y: int) -> GridWavefronts:
    order, ptr, x_start = [], [0], []
    for diagonal in range(X + Y - 1):
        first, last = max(0, diagonal - Y + 1), min(X - 1, diagonal)
        order.extend(x * Y + diagonal - x for x in range(first, last + 1))
        ptr.append(len(order))
        x_start.append(first)
    order = torch.tensor(order, dtype=torch.long)
    num_nodes = X * Y
    inverse = inverse_order(order)

    # Neighbours as positions in diagonal order; the out-of-grid index num_nodes points at a zero row
    # that the sweeps append to the tables they gather from.
    x, y = order // Y, order % Y
    padded_inverse = torch.cat([inverse, torch.tensor([num_nodes])])

    def position(x_new: Tensor, y_new: Tensor) -> Tensor:
        inside = (x_new >= 0) & (x_new < X) & (y_new >= 0) & (y_new < Y)
        return padded_inverse[torch.where(inside, x_new * Y + y_new, num_nodes)]

    successor = torch.stack([position(x + 1, y), position(x, y + 1)], dim=1)
    predecessor = torch.stack([position(x - 1, y), position(x, y - 1)], dim=1)
    return GridWavefronts(order, inverse, successor, predecessor, ptr, x_start)


class GridChunks(NamedTuple):
    r"""Schedule of the chunkwise form: an :math:`X \times Y` grid cut into :math:`c_x \times c_y` chunks.

    The grid is padded at its far ends to :math:`n_x c_x \times n_y c_y` (padded cells come after every
    real cell in both directions, so with zero gates they cannot change the result). Chunks form an
    :math:`n_x \times n_y` grid of their own, swept by its anti-diagonals (``chunks``); inside a chunk the
    :math:`P = c_x c_y` cells are listed in the anti-diagonal order of ``cells``.

    Every quantity inside a chunk is a linear function of :math:`U = P + c_y + c_x` *units*: unit
    :math:`p < P` is the source term :math:`k_p v_p^\top` of cell position :math:`p`, unit :math:`P + j` the
    state on the r-edge entering the chunk's cell :math:`(0, j)`, unit :math:`P + c_y + i` the d-edge
    entering :math:`(i, 0)`. The chunk's outgoing boundary is listed the same way: the r-edges leaving
    :math:`(c_x - 1, j)`, then the d-edges leaving :math:`(i, c_y - 1)`, so the outgoing boundary of one
    chunk lines up with the incoming boundary of the chunks to its right and below.

    Attributes:
        chunk_size (tuple[int, int]): :math:`(c_x, c_y)`.
        num_chunks (tuple[int, int]): :math:`(n_x, n_y)`.
        chunks (GridWavefronts): anti-diagonal schedule of the chunk grid.
        cells (GridWavefronts): anti-diagonal schedule of the cells of one chunk.
        right_in (list[LongTensor]): per cell diagonal ``s``, for each of its cells the row of the
            incoming r-edge's weights in ``cat([weights of diagonal s - 1, boundary units])``.
        down_in (list[LongTensor]): the same for the incoming d-edge.
        chunk_in (list[LongTensor]): per chunk diagonal ``s``, ``[2, n_s]``: the row of each chunk's left
            (``[0]``) and upper (``[1]``) neighbour in ``cat([diagonal s - 1, one zero row])``.
        outgoing (LongTensor): ``[c_y + c_x]`` positions of the cells whose r-edge (first :math:`c_y`) or
            d-edge (last :math:`c_x`) leaves the chunk, in boundary order.
    """

    chunk_size: tuple
    num_chunks: tuple
    chunks: GridWavefronts
    cells: GridWavefronts
    right_in: list[Tensor]
    down_in: list[Tensor]
    chunk_in: list[Tensor]
    outgoing: Tensor

    def to(self, device) -> "GridChunks":
        return GridChunks(
            self.chunk_size,
            self.num_chunks,
            self.chunks.to(device),
            self.cells.to(device),
            [index.to(device) for index in self.right_in],
            [index.to(device) for index in self.down_in],
            [index.to(device) for index in self.chunk_in],
            self.outgoing.to(device),
        )


def grid_chunks(X: int, Y: int, chunk_size, device=None) -> GridChunks:
    r"""The chunkwise schedule of an ``X x Y`` grid with chunks of ``chunk_size`` (an int or a pair
    :math:`(c_x, c_y)`, each capped at the grid size), see :class:`GridChunks`. Cached."""
    check_grid_size(X, Y)
    chunk_x, chunk_y = check_chunk_size(chunk_size)
    return _grid_chunks_on(X, Y, min(chunk_x, X), min(chunk_y, Y), normalize_device(device))


def check_chunk_size(chunk_size) -> tuple:
    pair = (chunk_size, chunk_size) if not isinstance(chunk_size, (tuple, list)) else tuple(chunk_size)
    if len(pair) != 2 or not all(isinstance(size, int) and not isinstance(size, bool) and size >= 1 for size in pair):
        raise ValueError(f"chunk_size: expected a positive int or a pair of positive ints, got {chunk_size!r}")
    return pair


def _rows_in_previous_diagonal(
    wavefronts: GridWavefronts, diagonal: int, direction: int, missing_rows: Tensor
) -> Tensor:
    """For each cell of ``diagonal``, the row of its predecessor in ``direction`` counted from the start of
    the previous diagonal, or ``len(previous diagonal) + missing_rows`` where it has none."""
    lo, hi = wavefronts.ptr[diagonal], wavefronts.ptr[diagonal + 1]
    previous_lo = wavefronts.ptr[diagonal - 1] if diagonal > 0 else lo
    predecessor = wavefronts.predecessor[lo:hi, direction]
    return torch.where(
        predecessor < wavefronts.order.numel(), predecessor - previous_lo, lo - previous_lo + missing_rows
    )


@functools.lru_cache(maxsize=32)
def _grid_chunks_on(X: int, Y: int, chunk_x: int, chunk_y: int, device: torch.device) -> GridChunks:
    num_x, num_y = -(-X // chunk_x), -(-Y // chunk_y)
    cells, chunks = _grid_wavefronts_cpu(chunk_x, chunk_y), _grid_wavefronts_cpu(num_x, num_y)
    x, y = cells.order // chunk_y, cells.order % chunk_y
    # A missing predecessor inside a chunk is a boundary unit (its row follows the previous diagonal's
    # rows in the table the sweep gathers from); a missing neighbour chunk reads one zero row.
    right_in, down_in, chunk_in = [], [], []
    for diagonal in range(len(cells.ptr) - 1):
        cells_slice = slice(cells.ptr[diagonal], cells.ptr[diagonal + 1])
        right_in.append(_rows_in_previous_diagonal(cells, diagonal, RIGHT, y[cells_slice]))
        down_in.append(_rows_in_previous_diagonal(cells, diagonal, DOWN, chunk_y + x[cells_slice]))
    for diagonal in range(len(chunks.ptr) - 1):
        chunk_in.append(
            torch.stack(
                [
                    _rows_in_previous_diagonal(chunks, diagonal, direction, torch.tensor(0))
                    for direction in (RIGHT, DOWN)
                ]
            )
        )
    inverse = cells.inverse
    outgoing = torch.cat(
        [
            inverse[(chunk_x - 1) * chunk_y + torch.arange(chunk_y)],
            inverse[torch.arange(chunk_x) * chunk_y + chunk_y - 1],
        ]
    )
    schedule = GridChunks((chunk_x, chunk_y), (num_x, num_y), chunks, cells, right_in, down_in, chunk_in, outgoing)
    return schedule.to(device)
