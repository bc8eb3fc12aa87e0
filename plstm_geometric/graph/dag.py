"""Orienting graphs into DAGs and grouping their nodes into topological levels."""
from typing import Optional, Tuple, Union

import torch
from torch import Tensor

from .validation import check_edge_index


def dagify(
    edge_index: Tensor,
    num_nodes: int,
    order: Optional[Tensor] = None,
    return_edge_id: bool = False,
) -> Union[Tensor, Tuple[Tensor, Tensor]]:
    r"""Orients an undirected graph into a DAG.

    PyG stores an undirected graph with both directions of every edge. Each undirected edge is kept once,
    directed from the endpoint of lower rank to the endpoint of higher rank, where the rank of node
    :math:`n` is ``(order[n], n)`` (ties in ``order`` broken by node index). Since every edge goes up in a
    strict total order the result is acyclic. Self-loops and duplicate edges are dropped.

    Args:
        edge_index (LongTensor): ``[2, E]`` edges; either direction of an edge may be present.
        num_nodes (int): number of nodes :math:`N`.
        order (Tensor, optional): ``[N]`` rank per node (any real dtype). Default: the node index.
        return_edge_id (bool): also return, for every DAG edge, the column of ``edge_index`` it was
            taken from (the first occurrence), to carry edge attributes along.

    Returns:
        ``dag_edge_index`` ``[2, E']``, sorted by source node then destination node; with
        ``return_edge_id=True`` also ``edge_id`` ``[E']``.
    """
    check_edge_index(edge_index, num_nodes)
    device = edge_index.device
    src, dst = edge_index
    if order is None:
        lower_first = src < dst
    else:
        if not isinstance(order, Tensor) or order.shape != (num_nodes,):
            raise ValueError(f"order: expected a tensor of shape [{num_nodes}], got "
                             f"{tuple(order.shape) if isinstance(order, Tensor) else type(order).__name__}")
        order = order.to(device)
        rank_src, rank_dst = order[src], order[dst]
        lower_first = (rank_src < rank_dst) | ((rank_src == rank_dst) & (src < dst))
    low = torch.where(lower_first, src, dst)
    high = torch.where(lower_first, dst, src)
    edge_id = torch.arange(edge_index.size(1), device=device)
    not_loop = src != dst
    low, high, edge_id = low[not_loop], high[not_loop], edge_id[not_loop]

    # One integer key per (source, destination): sorting it orders edges by source then destination, and
    # makes duplicates adjacent so that the stable sort keeps the first occurrence.
    key = low * num_nodes + high
    key, perm = torch.sort(key, stable=True)
    first = torch.ones_like(key, dtype=torch.bool)
    first[1:] = key[1:] != key[:-1]
    perm = perm[first]
    dag_edge_index = torch.stack([low[perm], high[perm]])
    if return_edge_id:
        return dag_edge_index, edge_id[perm]
    return dag_edge_index


def reverse_dag(edge_index: Tensor) -> Tensor:
    """The same edges pointing the other way (dst -> src), in the same edge order.

    A pLSTM sweep only propagates along edge direction; running a second layer on the reversed DAG lets
    information flow from the sinks back to the sources.
    """
    if not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError("edge_index: expected a tensor of shape [2, E]")
    return edge_index.flip(0)


def out_csr(edge_index: Tensor, num_nodes: int) -> Tuple[Tensor, Tensor]:
    """Edges grouped by source node: ``(ptr [N + 1], edge ids [E] sorted by source, stable)``."""
    src = edge_index[0]
    edge_ids = torch.argsort(src, stable=True)
    ptr = torch.zeros(num_nodes + 1, dtype=torch.long, device=edge_index.device)
    ptr[1:] = torch.cumsum(torch.bincount(src, minlength=num_nodes), 0)
    return ptr, edge_ids


def expand_ranges(starts: Tensor, counts: Tensor) -> Tensor:
    """Concatenation of ``arange(s, s + c)`` for every ``(s, c)``, without a Python loop."""
    total = int(counts.sum())
    offsets = torch.cumsum(counts, 0) - counts
    within = torch.arange(total, device=counts.device) - torch.repeat_interleave(offsets, counts, output_size=total)
    return torch.repeat_interleave(starts, counts, output_size=total) + within


def node_levels(edge_index: Tensor, num_nodes: int) -> Tensor:
    r"""Topological level of every node: the length of the longest path reaching it.

    Sources have level 0; an edge always goes from a lower to a higher level, so all nodes of one level
    can be processed at once. Kahn's algorithm, one vectorised step per level: a node joins the frontier
    when its last predecessor has been processed.

    Raises:
        ValueError: if the graph has a cycle; the message names a node on it.
    """
    check_edge_index(edge_index, num_nodes)
    device = edge_index.device
    level = torch.full((num_nodes,), -1, dtype=torch.long, device=device)
    if num_nodes == 0:
        return level
    ptr, edge_ids = out_csr(edge_index, num_nodes)
    dst_by_src = edge_index[1, edge_ids]
    out_degree = ptr[1:] - ptr[:-1]
    remaining_in = torch.bincount(edge_index[1], minlength=num_nodes)
    frontier = (remaining_in == 0).nonzero().view(-1)
    depth = 0
    while frontier.numel() > 0:
        level[frontier] = depth
        targets = dst_by_src[expand_ranges(ptr[frontier], out_degree[frontier])]
        remaining_in.scatter_add_(0, targets, torch.full_like(targets, -1))
        targets = torch.unique(targets)
        frontier = targets[remaining_in[targets] == 0]
        depth += 1
    if bool((level < 0).any()):
        raise ValueError(f"edge_index: the graph has a cycle through node {node_on_cycle(edge_index, level < 0)}; "
                         "expected a DAG (orient undirected graphs with dagify)")
    return level


def node_on_cycle(edge_index: Tensor, unprocessed: Tensor) -> int:
    """A node on a cycle, given the nodes Kahn's algorithm could not process.

    Every unprocessed node has an unprocessed predecessor, so following "one predecessor" pointers from
    any of them must end up circling; after at least N pointer steps (done by repeated squaring) the walk
    is on a cycle.
    """
    src, dst = edge_index
    inside = unprocessed[src] & unprocessed[dst]
    num_nodes = unprocessed.numel()
    predecessor = torch.arange(num_nodes, device=edge_index.device)
    predecessor[dst[inside]] = src[inside]
    for _ in range(max(1, num_nodes.bit_length())):
        predecessor = predecessor[predecessor]
    start = int(unprocessed.nonzero()[0])
    return int(predecessor[start])


def weak_components(edge_index: Tensor, num_nodes: int) -> Tensor:
    """Component label per node (the smallest node id in it), by min-label propagation with pointer jumping."""
    label = torch.arange(num_nodes, device=edge_index.device)
    src, dst = edge_index
    while True:
        new = label.clone()
        new.scatter_reduce_(0, dst, label[src], reduce="amin")
        new.scatter_reduce_(0, src, label[dst], reduce="amin")
        new = new[new]
        if torch.equal(new, label):
            return label
        label = new
