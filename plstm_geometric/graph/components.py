"""Per-graph dense layout of a batch: the integer structure behind the parallel pLSTM form."""

from dataclasses import dataclass

import torch
from torch import Tensor

from .dag import weak_components
from .device import dataclass_to


@dataclass
class SizeBucket:
    """Graphs of similar size, padded to a common ``[graphs, max_nodes]`` / ``[graphs, max_edges]``.

    Attributes:
        num_graphs, max_nodes, max_edges (int): padded sizes.
        node_id, node_graph, node_slot (LongTensor): the bucket's nodes, their graph (within the bucket)
            and position in it.
        edge_id, edge_graph, edge_slot, src_slot, dst_slot (LongTensor): the same for edges, with the
            positions of their endpoints; edges are numbered by topological level within a graph.
        line_id, line_graph, line_in_slot, line_out_slot (LongTensor): the same for line edges.
        node_map (LongTensor): ``[graphs * max_nodes]`` the node at every padded position, or the batch's
            node count (a zero row the op appends) where the position is padding.
        node_row, edge_row, dst_row (LongTensor): flat padded positions ``graph * max + slot`` of the
            bucket's nodes, of its edges and of their destinations.
        src_entry (LongTensor): flat position of every edge's nonzero ``(edge_slot, src_slot)`` in a
            ``[graphs, max_edges, max_nodes]`` matrix.
        line_entry (LongTensor): flat position of every line edge's ``(out_slot, in_slot)`` in a
            ``[graphs, max_edges, max_edges]`` matrix; ``line_in_row``, ``line_out_row`` are its edges'
            flat padded positions.
    """

    num_graphs: int
    max_nodes: int
    max_edges: int
    node_id: Tensor
    node_graph: Tensor
    node_slot: Tensor
    edge_id: Tensor
    edge_graph: Tensor
    edge_slot: Tensor
    src_slot: Tensor
    dst_slot: Tensor
    line_id: Tensor
    line_graph: Tensor
    line_in_slot: Tensor
    line_out_slot: Tensor
    node_map: Tensor
    node_row: Tensor
    edge_row: Tensor
    dst_row: Tensor
    src_entry: Tensor
    line_entry: Tensor
    line_in_row: Tensor
    line_out_row: Tensor

    def to(self, device) -> "SizeBucket":
        return dataclass_to(self, device)


@dataclass
class ComponentLayout:
    """A batch split into its weakly connected components (one per molecule), grouped into size buckets.

    Padding every graph to the largest one of the batch wastes most of the work when sizes vary (a batch
    of 1,024 molecules ranges from 2 to over 100 atoms), while every bucket costs a fixed number of
    operations; :func:`size_buckets` balances the two.
    """

    max_edges: int
    padded_edges: int
    buckets: list[SizeBucket]

    def to(self, device) -> "ComponentLayout":
        return dataclass_to(self, device)


def slots(group: Tensor, sort_key: Tensor, num_groups: int) -> Tensor:
    """Position of every item inside its group, ordered by ``sort_key`` within the group."""
    order = torch.argsort(sort_key, stable=True)
    order = order[torch.argsort(group[order], stable=True)]
    sizes = torch.bincount(group, minlength=num_groups)
    starts = torch.cumsum(sizes, 0) - sizes
    slot = torch.empty_like(group)
    slot[order] = torch.arange(group.numel(), device=group.device) - starts[group[order]]
    return slot


# Cost model of one bucket of the parallel form: BUCKET_COST + sum over its graphs of size ** 3, where
# size is the bucket's largest node or edge count (the dense solve and products are cubic in it). The fixed
# part, about two dozen operations forward and backward, was measured to cost about as much as the dense
# work of ten graphs of 30 edges.
BUCKET_COST = 3e5
# Sizes are first rounded up to this geometric grid, which bounds the number of candidate buckets.
SIZE_GRID = 1.125


def size_buckets(size: Tensor) -> Tensor:
    """Bucket of every graph of ``[G]`` sizes: contiguous ranges of sorted sizes whose padded cost (see
    ``BUCKET_COST``) is least, by dynamic programming over the distinct (grid-rounded) sizes."""
    if size.numel() == 0:
        return size.clone()
    steps = torch.ceil(torch.log(size.double()) / torch.log(torch.tensor(SIZE_GRID, dtype=torch.float64)))
    grid, step_of, count = torch.unique(steps.long(), return_inverse=True, return_counts=True)
    largest = size.new_zeros(grid.numel()).scatter_reduce(0, step_of, size, "amax").double().pow(3).tolist()
    total = [0] + torch.cumsum(count, 0).tolist()
    best, start = [0.0], []
    for last in range(len(largest)):
        cost, first = min(
            (best[first] + BUCKET_COST + (total[last + 1] - total[first]) * largest[last], first)
            for first in range(last + 1)
        )
        best.append(cost)
        start.append(first)
    bucket_of_step = [0] * len(largest)
    last, bucket = len(largest) - 1, 0
    while last >= 0:
        for step in range(start[last], last + 1):
            bucket_of_step[step] = bucket
        last, bucket = start[last] - 1, bucket + 1
    return torch.tensor(bucket_of_step, dtype=torch.long, device=size.device)[step_of]


def build_component_layout(
    edge_index: Tensor, line_edge_index: Tensor, num_nodes: int, node_level: Tensor
) -> ComponentLayout:
    device = edge_index.device
    _, node_component = torch.unique(weak_components(edge_index, num_nodes), return_inverse=True)
    num_components = int(node_component.max()) + 1 if num_nodes else 0
    node_slot = slots(node_component, torch.arange(num_nodes, device=device), num_components)
    src, dst = edge_index
    edge_component = node_component[src]
    edge_slot = slots(edge_component, node_level[src], num_components)
    nodes_per = torch.bincount(node_component, minlength=num_components)
    edges_per = torch.bincount(edge_component, minlength=num_components)
    size = torch.maximum(nodes_per, edges_per).clamp(min=1)
    bucket_of = size_buckets(size)

    buckets = []
    e_in, e_out = line_edge_index
    line_component = edge_component[e_in]
    for bucket in torch.unique(bucket_of).tolist():
        members = (bucket_of == bucket).nonzero().view(-1)
        graph_in_bucket = torch.full((num_components,), -1, dtype=torch.long, device=device)
        graph_in_bucket[members] = torch.arange(members.numel(), device=device)
        node_id = (graph_in_bucket[node_component] >= 0).nonzero().view(-1)
        edge_id = (graph_in_bucket[edge_component] >= 0).nonzero().view(-1)
        line_id = (graph_in_bucket[line_component] >= 0).nonzero().view(-1)
        num_graphs, max_nodes = members.numel(), int(nodes_per[members].max())
        max_edges = int(edges_per[members].max())
        node_graph, edge_graph = graph_in_bucket[node_component[node_id]], graph_in_bucket[edge_component[edge_id]]
        line_graph = graph_in_bucket[line_component[line_id]]
        src_slot, dst_slot = node_slot[src[edge_id]], node_slot[dst[edge_id]]
        line_in_slot, line_out_slot = edge_slot[e_in[line_id]], edge_slot[e_out[line_id]]
        # Flat positions in the padded per-graph tensors, so that the op places and gathers rows with one
        # index per tensor and never recomputes them.
        node_row = node_graph * max_nodes + node_slot[node_id]
        edge_row = edge_graph * max_edges + edge_slot[edge_id]
        node_map = torch.full((num_graphs * max_nodes,), num_nodes, dtype=torch.long, device=device)
        node_map[node_row] = node_id
        buckets.append(
            SizeBucket(
                num_graphs=num_graphs,
                max_nodes=max_nodes,
                max_edges=max_edges,
                node_id=node_id,
                node_graph=node_graph,
                node_slot=node_slot[node_id],
                edge_id=edge_id,
                edge_graph=edge_graph,
                edge_slot=edge_slot[edge_id],
                src_slot=src_slot,
                dst_slot=dst_slot,
                line_id=line_id,
                line_graph=line_graph,
                line_in_slot=line_in_slot,
                line_out_slot=line_out_slot,
                node_map=node_map,
                node_row=node_row,
                edge_row=edge_row,
                dst_row=edge_graph * max_nodes + dst_slot,
                src_entry=edge_row * max_nodes + src_slot,
                line_entry=(line_graph * max_edges + line_out_slot) * max_edges + line_in_slot,
                line_in_row=line_graph * max_edges + line_in_slot,
                line_out_row=line_graph * max_edges + line_out_slot,
            )
        )
    return ComponentLayout(
        max_edges=int(edges_per.max()) if num_components else 0,
        padded_edges=sum(b.num_graphs * b.max_edges for b in buckets),
        buckets=buckets,
    )
