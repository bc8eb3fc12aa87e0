"""Per-graph dense layout of a batch: the integer structure behind the parallel pLSTM form."""
from dataclasses import dataclass, fields

import torch
from torch import Tensor

from .dag import weak_components


@dataclass
class ComponentLayout:
    """Where every node, edge and line edge of a disjoint union goes in padded per-graph tensors.

    A batch of graphs is split into its weakly connected components (one per molecule). Inside a
    component, edges are numbered by topological level, so the line-graph transition matrix of each
    component is strictly lower triangular.

    Attributes:
        num_components, max_nodes, max_edges (int): padded sizes ``[C, max_nodes]`` / ``[C, max_edges]``.
        node_component, node_slot (LongTensor): ``[N]`` component and position of every node.
        edge_component, edge_slot (LongTensor): ``[E]`` the same for edges.
        src_slot, dst_slot (LongTensor): ``[E]`` node positions of the edge endpoints.
        line_component, line_in_slot, line_out_slot (LongTensor): ``[L]`` for line edges.
    """

    num_components: int
    max_nodes: int
    max_edges: int
    node_component: Tensor
    node_slot: Tensor
    edge_component: Tensor
    edge_slot: Tensor
    src_slot: Tensor
    dst_slot: Tensor
    line_component: Tensor
    line_in_slot: Tensor
    line_out_slot: Tensor

    def to(self, device) -> "ComponentLayout":
        return ComponentLayout(**{f.name: (v.to(device) if isinstance(v, Tensor) else v)
                                  for f in fields(self) for v in [getattr(self, f.name)]})


def slots(group: Tensor, sort_key: Tensor, num_groups: int):
    """Position of every item inside its group, ordered by ``sort_key`` within the group."""
    order = torch.argsort(sort_key, stable=True)
    order = order[torch.argsort(group[order], stable=True)]
    sizes = torch.bincount(group, minlength=num_groups)
    starts = torch.cumsum(sizes, 0) - sizes
    slot = torch.empty_like(group)
    slot[order] = torch.arange(group.numel(), device=group.device) - starts[group[order]]
    return slot, int(sizes.max()) if group.numel() else 0


def build_component_layout(edge_index: Tensor, line_edge_index: Tensor, num_nodes: int,
                           node_level: Tensor) -> ComponentLayout:
    label = weak_components(edge_index, num_nodes)
    _, node_component = torch.unique(label, return_inverse=True)
    num_components = int(node_component.max()) + 1 if num_nodes else 0
    node_slot, max_nodes = slots(node_component, torch.arange(num_nodes, device=label.device), num_components)
    src, dst = edge_index
    edge_component = node_component[src]
    edge_slot, max_edges = slots(edge_component, node_level[src], num_components)
    e_in, e_out = line_edge_index
    return ComponentLayout(
        num_components=num_components, max_nodes=max_nodes, max_edges=max_edges,
        node_component=node_component, node_slot=node_slot,
        edge_component=edge_component, edge_slot=edge_slot,
        src_slot=node_slot[src], dst_slot=node_slot[dst],
        line_component=edge_component[e_in], line_in_slot=edge_slot[e_in], line_out_slot=edge_slot[e_out],
    )
