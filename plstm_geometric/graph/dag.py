"""Orienting graphs into DAGs and grouping their nodes into topological levels."""

import torch
from torch import Tensor

from ..checks import check_edge_index, check_index


def dagify(
    edge_index: Tensor,
    num_nodes: int,
    order: Tensor | None = None,
    return_edge_id: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
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
            taken from, to carry edge attributes along: the first column stored in the DAG edge's own
            direction (low -> high), or, when only the other direction is stored, the first of those.

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
            raise ValueError(
                f"order: expected a tensor of shape [{num_nodes}], got "
                f"{tuple(order.shape) if isinstance(order, Tensor) else type(order).__name__}"
            )
        if order.is_complex():
            raise TypeError(f"order: expected a real tensor, got {order.dtype}")
        if order.is_floating_point():
            if not bool(torch.isfinite(order).all()):
                bad = int((~torch.isfinite(order)).nonzero()[0])
                raise ValueError(
                    f"order: expected finite ranks, got {order[bad].item()} at node {bad} "
                    "(NaN compares false both ways, so the result could have cycles)"
                )
        elif order.dtype == torch.bool:
            order = order.long()
        order = order.to(device)
        rank_src, rank_dst = order[src], order[dst]
        lower_first = (rank_src < rank_dst) | ((rank_src == rank_dst) & (src < dst))
    low = torch.where(lower_first, src, dst)
    high = torch.where(lower_first, dst, src)
    edge_id = torch.arange(edge_index.size(1), device=device)
    not_loop = src != dst
    low, high, edge_id = low[not_loop], high[not_loop], edge_id[not_loop]

    # One integer key per (source, destination): sorting it orders edges by source then destination, and
    # makes duplicates adjacent so that the stable sort keeps the first occurrence. The lowest bit puts the
    # columns stored in the DAG edge's own direction first, so that a direction-dependent edge attribute
    # is taken from the column low -> high whenever it exists.
    key = (low * num_nodes + high) * 2 + (~lower_first[not_loop]).long()
    key, perm = torch.sort(key, stable=True)
    key = key // 2
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
    check_index("edge_index", edge_index)
    return edge_index.flip(0)


def out_csr(edge_index: Tensor, num_nodes: int) -> tuple[Tensor, Tensor]:
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
    can be processed at once. Paths of nodes with one way in and one way out are contracted first
    (pointer jumping, :math:`O(\log)` steps), then Kahn's algorithm runs on the contracted graph, one
    vectorised step per level of that graph: a 100,000-node chain takes a handful of steps.

    Raises:
        ValueError: if the graph has a cycle; the message names a node on it.
    """
    check_edge_index(edge_index, num_nodes)
    device = edge_index.device
    if num_nodes == 0:
        return torch.empty(0, dtype=torch.long, device=device)
    head, distance, on_cycle = chain_heads(edge_index, num_nodes)
    if bool(on_cycle.any()):
        raise cycle_error(int(on_cycle.nonzero()[0]))

    # Contracted graph: every edge that is not a chain link joins the end of one chain to a chain head.
    src, dst = edge_index
    jump = head[dst] == dst
    jump_src, jump_dst = src[jump], dst[jump]
    jump_edges = torch.stack([head[jump_src], jump_dst])
    head_level = torch.zeros(num_nodes, dtype=torch.long, device=device)
    ptr, edge_ids = out_csr(jump_edges, num_nodes)
    out_degree = ptr[1:] - ptr[:-1]
    remaining_in = torch.bincount(jump_dst, minlength=num_nodes)
    is_head = head == torch.arange(num_nodes, device=device)
    frontier = (is_head & (remaining_in == 0)).nonzero().view(-1)
    processed = 0
    while frontier.numel() > 0:
        processed += frontier.numel()
        edges = edge_ids[expand_ranges(ptr[frontier], out_degree[frontier])]
        targets = jump_dst[edges]
        # Longest path: a head sits one above the furthest chain end that feeds it.
        head_level.scatter_reduce_(
            0, targets, head_level[jump_edges[0, edges]] + distance[jump_src[edges]] + 1, reduce="amax"
        )
        remaining_in.scatter_add_(0, targets, torch.full_like(targets, -1))
        targets = torch.unique(targets)
        frontier = targets[remaining_in[targets] == 0]
    if processed < int(is_head.sum()):
        stuck = is_head & (remaining_in > 0)
        raise cycle_error(node_on_cycle(edge_index, stuck[head]))
    return head_level[head] + distance


def chain_heads(edge_index: Tensor, num_nodes: int):
    """For every node: the first node of its chain, the distance to it, and whether it lies on a pure cycle.

    An edge ``u -> v`` is a chain link when it is the only edge leaving ``u`` and the only one entering
    ``v``. Pointer jumping doubles the followed distance each step; pointers that have not settled after
    ``log2(N) + 1`` steps go round a cycle of links.
    """
    src, dst = edge_index
    device = edge_index.device
    out_degree = torch.bincount(src, minlength=num_nodes)
    in_degree = torch.bincount(dst, minlength=num_nodes)
    is_link = (out_degree[src] == 1) & (in_degree[dst] == 1) & (src != dst)
    head = torch.arange(num_nodes, device=device)
    head[dst[is_link]] = src[is_link]
    distance = torch.zeros(num_nodes, dtype=torch.long, device=device)
    distance[dst[is_link]] = 1
    for _ in range(num_nodes.bit_length() + 1):
        next_head = head[head]
        if torch.equal(next_head, head):
            return head, distance, torch.zeros_like(head, dtype=torch.bool)
        distance = distance + distance[head]
        head = next_head
    return head, distance, head[head] != head


def cycle_error(node: int) -> ValueError:
    return ValueError(
        f"edge_index: the graph has a cycle through node {node}; "
        "expected a DAG (orient undirected graphs with dagify; for a graph stored with both "
        "directions of most edges pass orientation='undirected', since orientation='auto' takes a "
        "graph as undirected only when every edge has its reverse)"
    )


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


def level_pointers(sorted_levels: Tensor, num_levels: int) -> list[int]:
    """Start of every level in a sorted level vector, plus its end: slice ``l`` is ``ptr[l]:ptr[l + 1]``."""
    bounds = torch.arange(num_levels + 1, device=sorted_levels.device)
    return torch.searchsorted(sorted_levels, bounds).tolist()


def inverse_order(order: Tensor) -> Tensor:
    """The permutation that undoes ``order``: ``inverse[order[i]] = i``."""
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(order.numel(), device=order.device)
    return inverse
