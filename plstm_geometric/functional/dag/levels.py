r"""Level-by-level pLSTM sweep with scatter ops: the reference backend.

Cell states :math:`C_e \in \mathbb{R}^{K \times V}` live on the edges, ordered by the plan so that each
topological level is a contiguous slice. The forward sweep adds, level by level, the transported states
of the line-graph predecessors; the backward sweep runs the transposed recurrence from the last level
down:

.. math::
    G_e = M_e\, q_{\mathrm{dst}(e)} \bar{o}_{\mathrm{dst}(e)}^\top
          + \sum_{(e, e'')} T_{e \to e''}\, G_{e''}

where :math:`\bar{o}` is the gradient of the output. All parameter gradients are then local contractions
of :math:`C` and :math:`G`. Both are ``[E, H, K, V]``; ``recompute_states=True`` drops :math:`C` after the
forward pass and rebuilds it in the backward pass (one more sweep), so a stack of layers only holds
:math:`O(N H (K + V))` activations between forward and backward instead of :math:`O(E H K V)`.
"""

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from ...graph.plan import PLSTMPlan
from ..common import contract_key, contract_value, direct_term, direct_term_grads, in_compute_dtype, source_terms


def propagate(values: Tensor, weights: Tensor, gather: Tensor, scatter: Tensor, ptr, levels) -> Tensor:
    """``values[scatter[l]] += weights[l] * values[gather[l]]``, one slice ``ptr[i]:ptr[i + 1]`` per level.

    Levels are visited in the order given, so that every gathered row is final before it is read: the
    forward sweep goes up (gather ``e_in``, scatter ``e_out``), the backward sweep down (the transpose).
    """
    # index_select and an in-place product are about 2x faster per level on CPU than advanced indexing and
    # a new product; under autograd (double backward) the product must not overwrite what it saved
    in_place = not torch.is_grad_enabled()
    for level in levels:
        lo, hi = ptr[level], ptr[level + 1]
        if lo == hi:
            continue
        rows = values.index_select(0, gather[lo:hi])
        weight = weights[lo:hi, :, None, None]
        values.index_add_(0, scatter[lo:hi], rows.mul_(weight) if in_place else rows * weight)
    return values


def sweep_states(plan: PLSTMPlan, source_kv: Tensor, transition: Tensor) -> Tensor:
    """All cell states ``[E, H, K, V]`` (scheduled order) from the source terms and transitions; the
    states are accumulated in ``source_kv`` itself (a fresh temporary of the caller: no copy)."""
    return propagate(
        source_kv,
        transition,
        plan.line_in_by_out,
        plan.line_out_by_out,
        plan.line_out_level_ptr,
        range(1, plan.num_levels),
    )


def sweep_state_grads(plan: PLSTMPlan, mark_grad: Tensor, transition_by_in: Tensor, states: Tensor):
    """Gradients ``[E, H, K, V]`` of all cell states, by the transposed recurrence from the last level
    (accumulated in ``mark_grad``), and the gradient ``[L, H]`` of the transitions in the backward
    (by-``e_in``) order.

    Transition ``l`` carries ``C_{e_in}`` into ``C_{e_out}``: its gradient is ``<G_{e_out}, C_{e_in}>``. The
    sweep gathers every final ``G_{e_out}`` of a level anyway, so the contraction is taken there, level by
    level, instead of from two gathered ``[L, H, K, V]`` copies afterwards.
    """
    values, gather, scatter, ptr = mark_grad, plan.line_out_by_in, plan.line_in_by_in, plan.line_in_level_ptr
    transition_grad = transition_by_in.new_zeros(transition_by_in.shape)
    in_place = not torch.is_grad_enabled()  # as in propagate
    for level in range(plan.num_levels - 2, -1, -1):
        lo, hi = ptr[level], ptr[level + 1]
        if lo == hi:
            continue
        incoming = scatter[lo:hi]
        gathered = values.index_select(0, gather[lo:hi])
        # <G, C> over K and V as one dot product per (transition, head): no [n, H, K, V] temporary
        transition_grad[lo:hi] = torch.linalg.vecdot(gathered.flatten(2), states.index_select(0, incoming).flatten(2))
        weight = transition_by_in[lo:hi, :, None, None]
        values.index_add_(0, incoming, gathered.mul_(weight) if in_place else gathered * weight)
    return values, transition_grad


class Sweeps(NamedTuple):
    """The two recurrences of a level sweep, the only part that differs between implementations.

    ``states_and_readout(plan, query, key, value, source, transition)`` returns the cell states
    ``[E, H, K, V]`` and the readouts ``q_dst^T C_e`` ``[E, H, V]``;
    ``state_and_transition_grads(plan, query, mark, out_grad, transition, states)`` returns the state
    gradients ``[E, H, K, V]`` and the gradient of ``transition`` ``[L, H]``. Gates are in schedule order,
    ``transition`` in the forward (by ``e_out``) order.
    """

    states_and_readout: Callable
    state_and_transition_grads: Callable


def scatter_states_and_readout(
    plan: PLSTMPlan, query: Tensor, key: Tensor, value: Tensor, source: Tensor, transition: Tensor
):
    src = plan.edge_src
    states = sweep_states(plan, source_terms(source, key[src], value[src]), transition)
    return states, contract_key(query[plan.edge_dst], states)


def scatter_state_and_transition_grads(
    plan: PLSTMPlan, query: Tensor, mark: Tensor, out_grad: Tensor, transition: Tensor, states: Tensor
):
    dst = plan.edge_dst
    seed = mark[:, :, None, None] * query[dst][..., :, None] * out_grad[dst][..., None, :]
    # transition is stored in forward order (by e_out); the backward sweep wants it by e_in.
    state_grads, grad_by_in = sweep_state_grads(plan, seed, transition[plan.line_by_out_for_in], states)
    transition_grad = torch.empty_like(grad_by_in)
    transition_grad[plan.line_by_out_for_in] = grad_by_in
    return state_grads, transition_grad


SCATTER_SWEEPS = Sweeps(scatter_states_and_readout, scatter_state_and_transition_grads)


class LevelSweep(torch.autograd.Function):
    """Inputs in schedule order (edges sorted by level, transitions sorted by ``e_out``); ``sweeps`` runs
    the recurrences, everything else (the readout sum, the gradient contractions) is shared."""

    @staticmethod
    def forward(ctx, query, key, value, source, transition, mark, direct, plan, recompute_states, sweeps):
        states, readout = sweeps.states_and_readout(plan, query, key, value, source, transition)
        out = direct_term(query, key, value, direct).index_add(0, plan.edge_dst, readout * mark[..., None])
        ctx.plan = plan
        ctx.recompute_states = recompute_states
        ctx.sweeps = sweeps
        if recompute_states:
            ctx.save_for_backward(query, key, value, source, transition, mark, direct)
        else:
            ctx.save_for_backward(query, key, value, source, transition, mark, direct, states, readout)
        return out

    @staticmethod
    def backward(ctx, out_grad):
        plan, sweeps = ctx.plan, ctx.sweeps
        src, dst = plan.edge_src, plan.edge_dst
        # Under create_graph=True this backward is itself differentiated: every op below is tracked by
        # autograd, but saved states are constants to it, so they are rebuilt from the inputs. The Triton
        # sweeps are not tracked: their second derivatives would be silently wrong, so they refuse.
        double_backward = torch.is_grad_enabled()
        if double_backward and sweeps is not SCATTER_SWEEPS:
            raise RuntimeError(
                "plstm_dag(backend='fused'): double backward (create_graph=True) is not supported; "
                "use backend='levels', 'parallel' or 'chains'"
            )
        if ctx.recompute_states or double_backward:
            query, key, value, source, transition, mark, direct = ctx.saved_tensors[:7]
            states, readout = sweeps.states_and_readout(plan, query, key, value, source, transition)
        else:
            query, key, value, source, transition, mark, direct, states, readout = ctx.saved_tensors
        key_src, value_src = key[src], value[src]
        out_grad = out_grad.contiguous()
        out_grad_dst = out_grad[dst]

        # Gradients through the direct term direct * (q . k) * v.
        query_grad, key_grad, value_grad, direct_grad = direct_term_grads(query, key, value, direct, out_grad)

        # Readout: out_n += mark_e * q_n^T C_e.
        mark_grad = (readout * out_grad_dst).sum(-1)
        states_out_grad = contract_value(states, out_grad_dst)
        query_grad = query_grad.index_add(0, dst, states_out_grad * mark[..., None])

        state_grads, transition_grad = sweeps.state_and_transition_grads(
            plan, query, mark, out_grad, transition, states
        )
        # Source term source_e * k_src v_src^T.
        grads_v = contract_value(state_grads, value_src)
        source_grad = (grads_v * key_src).sum(-1)
        key_grad = key_grad.index_add(0, src, grads_v * source[..., None])
        grads_k = contract_key(key_src, state_grads)
        value_grad = value_grad.index_add(0, src, grads_k * source[..., None])
        return (
            query_grad,
            key_grad,
            value_grad,
            source_grad,
            transition_grad,
            mark_grad,
            direct_grad,
            None,
            None,
            None,
        )


def plstm_dag_levels(
    query,
    key,
    value,
    source,
    transition,
    mark,
    direct,
    plan: PLSTMPlan,
    recompute_states: bool = False,
    sweeps: Sweeps = SCATTER_SWEEPS,
) -> Tensor:
    """Runs :class:`LevelSweep` on inputs in the caller's edge order and returns ``[N, H, V]``."""
    dtype = query.dtype
    query, key, value, source, transition, mark, direct = in_compute_dtype(
        query, key, value, source, transition, mark, direct
    )
    out = LevelSweep.apply(
        query,
        key,
        value,
        source[plan.edge_order],
        transition[plan.line_order_by_out],
        mark[plan.edge_order],
        direct,
        plan,
        recompute_states,
        sweeps,
    )
    return out.to(dtype)
