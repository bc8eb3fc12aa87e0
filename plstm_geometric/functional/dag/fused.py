r"""Fused level sweep: the pLSTM recurrences as Triton kernels, one launch per topological level.

The math is that of :mod:`~plstm_geometric.functional.dag.levels`, per head:

.. math::
    C_e = S_e\, k_{\mathrm{src}(e)} v_{\mathrm{src}(e)}^\top + \sum_{(e', e)} T_{e' \to e}\, C_{e'},
    \qquad r_e = q_{\mathrm{dst}(e)}^\top C_e,

    G_e = M_e\, q_{\mathrm{dst}(e)} \bar{o}_{\mathrm{dst}(e)}^\top + \sum_{(e, e'')} T_{e \to e''}\, G_{e''},
    \qquad \bar{T}_{e \to e''} = \langle G_{e''}, C_e \rangle.

One launch of the forward kernel covers one level: a program per (edge of the level, head, tile of
``BLOCK_V`` value columns) builds its ``K x BLOCK_V`` block of :math:`C_e` in registers from the source
term and the states of its line-graph predecessors (the CSR slice ``plan.line_ptr_by_out``), stores it, and
reduces the readout :math:`r_e` over the whole ``K`` axis it holds. The backward kernel runs the transposed
recurrence from the last level down over the CSR slice ``plan.line_ptr_by_in`` of line edges leaving
:math:`e`: it builds the seed :math:`M_e q \bar{o}^\top` in registers, adds the transported gradients of the
successors and, since it reads :math:`G_{e''}` anyway, reduces :math:`\langle G_{e''}, C_e \rangle` into the
transition gradient (one partial sum per value tile, summed afterwards). Predecessor states, keys, values,
queries and gates are read by index, so none of the ``[E, H, K, V]`` or ``[L, H, K, V]`` temporaries of the
scatter backend (source terms, seeds, gathered states) exist in global memory: the states and their
gradients are the only ``K x V``-sized tensors. The remaining gradient contractions are the shared batched ops of
:class:`~plstm_geometric.functional.dag.levels.LevelSweep`.

Tiling: ``K`` is held whole (``BLOCK_K``: the next power of two, at least ``MIN_BLOCK``) so the readout
reduces in registers without atomics; ``V`` is split so that a tile has at most ``TILE_ELEMENTS`` entries,
which stay in registers (see :func:`tile_shape`). Every output element is written by exactly one program,
so results are deterministic and buffers need no zero fill.

Importing this module imports Triton; :func:`~plstm_geometric.functional.plstm_dag` imports it only when
``backend="fused"`` is asked for. Off CUDA the kernels run only in Triton's interpreter
(``TRITON_INTERPRET=1`` set before this module is imported), which the tests use.
"""

import torch
import triton
import triton.language as tl
from torch import Tensor

from ...graph.plan import PLSTMPlan
from .levels import Sweeps, plstm_dag_levels

# At most 4096 entries per tile (64 x 64 for K = V = 64), with a warp per 512 entries (4 to 8 warps): 16
# entries per thread for the state tile and as many for the transported one. ptxas -v, sm_90, Triton 3.9
# (compiled, not run): 64 x 64 tiles take 110-206 registers per thread at 8 warps, no spills; float64 spills
# at 4 warps.
TILE_ELEMENTS = 4096
TILE_ELEMENTS_PER_WARP = 512
# Narrower blocks than 16 lanes leave most of a warp idle; padded lanes are masked.
MIN_BLOCK = 16


@triton.jit
def program_tile(first_edge, heads, key_channels, value_channels, BLOCK_K: tl.constexpr, BLOCK_V: tl.constexpr):
    """This program's edge ``first_edge + program_id(0)``, head ``program_id(1)`` and value tile
    ``program_id(2)``, its row in ``[E, H]`` layouts, and the offsets and masks of its ``K x BLOCK_V``
    block of a state."""
    # 64-bit offsets: E * H * K * V passes 2^31 on large graphs.
    edge = tl.program_id(0).to(tl.int64) + first_edge
    head = tl.program_id(1).to(tl.int64)
    v_tile = tl.program_id(2).to(tl.int64)
    k_offsets = tl.arange(0, BLOCK_K)
    v_offsets = v_tile * BLOCK_V + tl.arange(0, BLOCK_V)
    k_mask = k_offsets < key_channels
    v_mask = v_offsets < value_channels
    tile_offsets = k_offsets[:, None] * value_channels + v_offsets[None, :]
    tile_mask = k_mask[:, None] & v_mask[None, :]
    return edge, head, v_tile, edge * heads + head, k_offsets, v_offsets, k_mask, v_mask, tile_offsets, tile_mask


@triton.jit
def load_row(tensor, row, row_size, offsets, mask):
    """Entries ``offsets`` of row ``row`` of a contiguous ``[rows, row_size]`` view, zero where masked."""
    return tl.load(tensor + row * row_size + offsets, mask=mask, other=0.0)


@triton.jit
def rank_one_tile(gate, node_row, left, right, key_channels, value_channels, k_offsets, v_offsets, k_mask, v_mask):
    """``gate * left[node_row] right[node_row]^T`` on this program's tile: the source term
    ``S_e k_src v_src^T`` that starts the forward recurrence, the seed ``M_e q_dst g_dst^T`` of the backward one."""
    left_row = load_row(left, node_row, key_channels, k_offsets, k_mask)
    right_row = load_row(right, node_row, value_channels, v_offsets, v_mask)
    return gate * left_row[:, None] * right_row[None, :]


@triton.jit
def sweep_level_kernel(
    states,
    readout,
    query,
    key,
    value,
    source,
    transition,
    edge_src,
    edge_dst,
    line_ptr_by_out,
    line_in_by_out,
    first_edge,
    heads,
    key_channels,
    value_channels,
    BLOCK_K: tl.constexpr,
    BLOCK_V: tl.constexpr,
):
    """C_e and q_dst^T C_e, for the edge, head and value tile of :func:`program_tile`."""
    edge, head, v_tile, row, k_offsets, v_offsets, k_mask, v_mask, tile_offsets, tile_mask = program_tile(
        first_edge, heads, key_channels, value_channels, BLOCK_K, BLOCK_V
    )
    state_size = key_channels * value_channels
    state = rank_one_tile(
        tl.load(source + row),
        tl.load(edge_src + edge) * heads + head,
        key,
        value,
        key_channels,
        value_channels,
        k_offsets,
        v_offsets,
        k_mask,
        v_mask,
    )
    # Predecessors lie on lower levels, written by earlier launches.
    for line in range(tl.load(line_ptr_by_out + edge), tl.load(line_ptr_by_out + edge + 1)):
        predecessor_row = tl.load(line_in_by_out + line) * heads + head
        predecessor = load_row(states, predecessor_row, state_size, tile_offsets, tile_mask)
        state += tl.load(transition + line * heads + head) * predecessor
    tl.store(states + row * state_size + tile_offsets, state, mask=tile_mask)

    query_dst = load_row(query, tl.load(edge_dst + edge) * heads + head, key_channels, k_offsets, k_mask)
    # Padded lanes can hold NaN (0 * inf from a zero pad) and must stay out of the reduction.
    readout_terms = tl.where(tile_mask, query_dst[:, None] * state, 0.0)
    tl.store(readout + row * value_channels + v_offsets, tl.sum(readout_terms, axis=0), mask=v_mask)


@triton.jit
def sweep_level_grads_kernel(
    state_grads,
    transition_grad_tiles,
    states,
    query,
    out_grad,
    mark,
    transition,
    edge_dst,
    line_ptr_by_in,
    line_out_by_in,
    line_by_out_for_in,
    first_edge,
    heads,
    num_line_edges,
    key_channels,
    value_channels,
    BLOCK_K: tl.constexpr,
    BLOCK_V: tl.constexpr,
):
    """G_e and the transition gradients of the line edges leaving e, for the edge, head and value tile of
    :func:`program_tile`."""
    edge, head, v_tile, row, k_offsets, v_offsets, k_mask, v_mask, tile_offsets, tile_mask = program_tile(
        first_edge, heads, key_channels, value_channels, BLOCK_K, BLOCK_V
    )
    state_size = key_channels * value_channels
    grad = rank_one_tile(
        tl.load(mark + row),
        tl.load(edge_dst + edge) * heads + head,
        query,
        out_grad,
        key_channels,
        value_channels,
        k_offsets,
        v_offsets,
        k_mask,
        v_mask,
    )
    state = load_row(states, row, state_size, tile_offsets, tile_mask)
    # Successors lie on higher levels, written by earlier (reverse-order) launches.
    for line in range(tl.load(line_ptr_by_in + edge), tl.load(line_ptr_by_in + edge + 1)):
        successor_grad = load_row(
            state_grads, tl.load(line_out_by_in + line) * heads + head, state_size, tile_offsets, tile_mask
        )
        # The transition lives in forward order; reading it there spares a reordered copy.
        forward_line = tl.load(line_by_out_for_in + line)
        grad += tl.load(transition + forward_line * heads + head) * successor_grad
        # Both tiles come from masked loads, zero in the padded lanes, so the reduction needs no mask.
        overlap = tl.sum(tl.sum(successor_grad * state, axis=1), axis=0)
        tl.store(transition_grad_tiles + (v_tile * num_line_edges + forward_line) * heads + head, overlap)
    tl.store(state_grads + row * state_size + tile_offsets, grad, mask=tile_mask)


def tile_shape(key_channels: int, value_channels: int):
    """``(BLOCK_K, BLOCK_V, number of value tiles, warps per program)``."""
    block_k = max(MIN_BLOCK, triton.next_power_of_2(key_channels))
    block_v = max(MIN_BLOCK, min(triton.next_power_of_2(value_channels), TILE_ELEMENTS // block_k))
    num_warps = min(8, max(4, block_k * block_v // TILE_ELEMENTS_PER_WARP))
    return block_k, block_v, triton.cdiv(value_channels, block_v), num_warps


def level_slices(plan: PLSTMPlan, levels):
    """``(first edge, number of edges)`` of the non-empty levels, in the order given (levels passed to
    :func:`~plstm_geometric.graph.build_plan` by the caller may skip numbers, leaving empty slices)."""
    ptr = plan.edge_level_ptr
    return [(ptr[level], ptr[level + 1] - ptr[level]) for level in levels if ptr[level + 1] > ptr[level]]


def fused_states_and_readout(
    plan: PLSTMPlan, query: Tensor, key: Tensor, value: Tensor, source: Tensor, transition: Tensor
):
    heads, key_channels, value_channels = query.size(1), query.size(2), value.size(2)
    states = query.new_empty(plan.num_edges, heads, key_channels, value_channels)
    readout = query.new_empty(plan.num_edges, heads, value_channels)
    if states.numel() == 0:
        return states, readout.zero_()
    block_k, block_v, value_tiles, num_warps = tile_shape(key_channels, value_channels)
    # The kernels index rows of contiguous [rows, H, channels] and [rows, H] layouts.
    query, key, value, source, transition = (t.contiguous() for t in (query, key, value, source, transition))
    for first_edge, num_edges in level_slices(plan, range(plan.num_levels)):
        sweep_level_kernel[(num_edges, heads, value_tiles)](
            states,
            readout,
            query,
            key,
            value,
            source,
            transition,
            plan.edge_src,
            plan.edge_dst,
            plan.line_ptr_by_out,
            plan.line_in_by_out,
            first_edge,
            heads,
            key_channels,
            value_channels,
            BLOCK_K=block_k,
            BLOCK_V=block_v,
            num_warps=num_warps,
        )
    return states, readout


def fused_state_and_transition_grads(
    plan: PLSTMPlan, query: Tensor, mark: Tensor, out_grad: Tensor, transition: Tensor, states: Tensor
):
    heads, key_channels, value_channels = states.shape[1:]
    state_grads = torch.empty_like(states)
    if states.numel() == 0:
        return state_grads, states.new_zeros(plan.num_line_edges, heads)
    block_k, block_v, value_tiles, num_warps = tile_shape(key_channels, value_channels)
    transition_grad_tiles = states.new_empty(value_tiles, plan.num_line_edges, heads)
    query, mark, out_grad, transition = (t.contiguous() for t in (query, mark, out_grad, transition))
    for first_edge, num_edges in level_slices(plan, range(plan.num_levels - 1, -1, -1)):
        sweep_level_grads_kernel[(num_edges, heads, value_tiles)](
            state_grads,
            transition_grad_tiles,
            states,
            query,
            out_grad,
            mark,
            transition,
            plan.edge_dst,
            plan.line_ptr_by_in,
            plan.line_out_by_in,
            plan.line_by_out_for_in,
            first_edge,
            heads,
            plan.num_line_edges,
            key_channels,
            value_channels,
            BLOCK_K=block_k,
            BLOCK_V=block_v,
            num_warps=num_warps,
        )
    return state_grads, transition_grad_tiles.sum(0)


FUSED_SWEEPS = Sweeps(fused_states_and_readout, fused_state_and_transition_grads)

# Kernels defined under TRITON_INTERPRET=1 run in Triton's CPU interpreter and accept CPU tensors.
INTERPRETED = not isinstance(sweep_level_kernel, triton.runtime.JITFunction)


def plstm_dag_fused(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    source: Tensor,
    transition: Tensor,
    mark: Tensor,
    direct: Tensor,
    plan: PLSTMPlan,
    recompute_states: bool = False,
) -> Tensor:
    """:func:`~plstm_geometric.functional.dag.levels.plstm_dag_levels` with the sweeps as Triton
    kernels; same arguments and result."""
    if query.device.type != "cuda" and not INTERPRETED:
        raise ValueError(
            f"backend='fused' runs Triton kernels, which need CUDA tensors; got device {query.device} "
            "(to run them on CPU, slowly, in Triton's interpreter, set TRITON_INTERPRET=1 before "
            "starting Python)"
        )
    return plstm_dag_levels(query, key, value, source, transition, mark, direct, plan, recompute_states, FUSED_SWEEPS)
