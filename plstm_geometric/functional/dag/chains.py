r"""Chain-contracted pLSTM sweep: long paths of the line graph are solved by a parallel scan.

Along a chain link :math:`(e', e)` the state obeys :math:`C_e = T_{e' \to e} C_{e'} + (\text{inflow})`,
a first-order linear recurrence. The :class:`~plstm_geometric.graph.chains.ChainSchedule` concatenates
all chain segments of one step into a single sequence with decay :math:`T` on links and 0 at segment
starts, and :func:`~plstm_geometric.functional.linear_recurrence` solves it in logarithmic depth. A
100,000-edge chain is then one step instead of 100,000. Autograd differentiates through the scan.
"""

import torch
from torch import Tensor

from ...graph.plan import PLSTMPlan
from ..common import contract_key, direct_term, in_compute_dtype, source_terms
from ..scan import linear_recurrence


def plstm_dag_chains(
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
    schedule = plan.chains
    heads, key_channels, value_channels = query.size(1), query.size(2), value.size(2)
    src, dst = plan.edge_index[:, schedule.edge_order]
    source_kv = source_terms(source[schedule.edge_order], key[src], value[src])
    is_link = schedule.link_line_id >= 0
    if transition.size(0):
        decay = torch.where(is_link[:, None], transition[schedule.link_line_id.clamp(min=0)], 0.0)
    else:  # no line edges: every edge starts its own segment (and there is nothing to gather from)
        decay = torch.zeros_like(source)

    states = []
    for level in range(schedule.num_levels):
        lo, hi = schedule.level_ptr[level], schedule.level_ptr[level + 1]
        impulse = source_kv[lo:hi]
        jump_lo, jump_hi = schedule.jump_level_ptr[level], schedule.jump_level_ptr[level + 1]
        if jump_hi > jump_lo:
            earlier = torch.cat(states)
            inflow = (
                earlier[schedule.jump_in_pos[jump_lo:jump_hi]]
                * transition[schedule.jump_line_id[jump_lo:jump_hi], :, None, None]
            )
            impulse = impulse.index_add(0, schedule.jump_out_pos[jump_lo:jump_hi] - lo, inflow)
        level_decay = decay[lo:hi, :, None, None].expand(-1, -1, key_channels, value_channels)
        solved = linear_recurrence(level_decay.reshape(1, hi - lo, -1), impulse.reshape(1, hi - lo, -1))
        states.append(solved.view(hi - lo, heads, key_channels, value_channels))
    states = torch.cat(states) if states else source_kv

    readout = contract_key(query[dst], states) * mark[schedule.edge_order, :, None]
    return direct_term(query, key, value, direct).index_add(0, dst, readout).to(dtype)
