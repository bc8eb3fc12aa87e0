"""Chains of the line graph, contracted so that a long path costs one scan instead of one step per edge."""

from dataclasses import dataclass

import torch
from torch import Tensor

from .dag import inverse_order, level_pointers, node_levels
from .device import dataclass_to


@dataclass
class ChainSchedule:
    r"""Line nodes (edges) grouped into chain segments, and segments into levels.

    A line edge :math:`(e', e)` is a *chain link* when it is the only line edge leaving :math:`e'` and
    the only one entering :math:`e`. Chain links split the edges into segments (maximal paths of links).
    Every other line edge goes from the last edge of one segment to the first edge of another, so the
    segments form a DAG; its levels are the steps of the sweep, and inside a step all segments are
    concatenated into one sequence and solved by one linear recurrence whose decay is the link's
    transition (zero at segment starts, which cuts the sequence into independent pieces).

    Attributes:
        edge_order (LongTensor): ``[E]`` edge ids by (segment level, segment, position in segment).
        level_ptr (list[int]): edges of step ``l`` are ``edge_order[level_ptr[l]:level_ptr[l+1]]``.
        link_line_id (LongTensor): ``[E]`` in that order, the line edge id of the chain link entering the
            edge, or -1 at segment starts.
        jump_line_id, jump_in_pos, jump_out_pos (LongTensor): the other line edges (between segments),
            sorted by the step of their target, with scheduled positions of ``e_in`` and ``e_out``;
            ``jump_level_ptr`` slices them per step.
    """

    edge_order: Tensor
    level_ptr: list[int]
    link_line_id: Tensor
    jump_line_id: Tensor
    jump_in_pos: Tensor
    jump_out_pos: Tensor
    jump_level_ptr: list[int]

    @property
    def num_levels(self) -> int:
        return len(self.level_ptr) - 1

    def to(self, device) -> "ChainSchedule":
        return dataclass_to(self, device)


def build_chain_schedule(line_edge_index: Tensor, num_edges: int) -> ChainSchedule:
    device = line_edge_index.device
    e_in, e_out = line_edge_index
    num_line = e_in.numel()
    out_degree = torch.bincount(e_in, minlength=num_edges)
    in_degree = torch.bincount(e_out, minlength=num_edges)
    is_link = (out_degree[e_in] == 1) & (in_degree[e_out] == 1)

    # Predecessor along chain links (self at segment starts); pointer jumping finds every edge's
    # segment start and its distance to it in log2(longest segment) steps.
    start = torch.arange(num_edges, device=device)
    start[e_out[is_link]] = e_in[is_link]
    distance = torch.zeros(num_edges, dtype=torch.long, device=device)
    distance[e_out[is_link]] = 1
    while True:
        next_start = start[start]
        if torch.equal(next_start, start):
            break
        distance = distance + distance[start]
        start = next_start

    link_line_id = torch.full((num_edges,), -1, dtype=torch.long, device=device)
    link_line_id[e_out[is_link]] = torch.arange(num_line, device=device)[is_link]

    segment_ids, segment = torch.unique(start, return_inverse=True)
    jump = (~is_link).nonzero().view(-1)
    segment_edges = torch.stack([segment[e_in[jump]], segment[e_out[jump]]])
    segment_level = node_levels(segment_edges, segment_ids.numel())
    edge_level = segment_level[segment]

    # Sort by (level, segment, position) with stable sorts from the least significant key.
    order = torch.argsort(distance, stable=True)
    order = order[torch.argsort(segment[order], stable=True)]
    order = order[torch.argsort(edge_level[order], stable=True)]
    position = inverse_order(order)
    num_levels = int(edge_level.max()) + 1 if num_edges else 0

    jump_level, jump_sort = torch.sort(edge_level[e_out[jump]], stable=True)
    jump = jump[jump_sort]
    return ChainSchedule(
        edge_order=order,
        level_ptr=level_pointers(edge_level[order], num_levels),
        link_line_id=link_line_id[order],
        jump_line_id=jump,
        jump_in_pos=position[e_in[jump]],
        jump_out_pos=position[e_out[jump]],
        jump_level_ptr=level_pointers(jump_level, num_levels),
    )
