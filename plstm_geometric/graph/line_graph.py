"""Line graphs of DAGs: pLSTM cell states live on edges, and the line graph says which feeds which."""

import math

import torch
from torch import Tensor

from ..checks import check_edge_index, check_node_level
from .dag import expand_ranges, node_levels, out_csr, weak_components
from .size import check_line_graph_size

# Ancestor sets for the D-mode pruning are bitsets over the root line nodes of one connected component;
# this caps their memory (line nodes x words x 8 bytes) so that a pathological graph (hundreds of
# thousands of roots in one component) fails with a clear message instead of exhausting memory.
MAX_ANCESTOR_BYTES = 4 * 2**30


def line_graph(edge_index: Tensor, num_nodes: int, mode: str = "P", node_level: Tensor | None = None) -> Tensor:
    r"""Line graph of a DAG, the structure along which pLSTM cell states flow.

    Its nodes are the edges of ``edge_index``; there is a line edge :math:`(e', e)` whenever
    :math:`\mathrm{dst}(e') = \mathrm{src}(e)`, i.e. the two edges meet at a node.

    * ``mode="P"``: all such pairs, grouped by :math:`e'` and, within a group, in edge order.
    * ``mode="D"``: the multitree pruning used by the diffusion mode. A multitree has at most one
      directed path between any two nodes, so products of transitions along paths never add up over
      exponentially many paths. Built greedily in topological order: for each edge :math:`e` its
      candidate predecessors :math:`e'` are visited in increasing edge id, and :math:`(e', e)` is kept
      when the ancestors of :math:`e'` (with :math:`e'`) are disjoint from those already reaching
      :math:`e`. The result is maximal: every dropped pair would create a second path. Ancestor sets
      are tracked as bitsets over the root line nodes, only for the line nodes with no or several
      candidates (a node with one candidate shares the set of the node above it), one vectorised step
      per level and candidate rank among the levels holding such nodes: a chain costs about what
      ``"P"`` costs, while on random DAGs the bitsets grow with roots times merge nodes.

    Args:
        edge_index (LongTensor): ``[2, E]`` DAG edges.
        num_nodes (int): number of nodes.
        mode (str): ``"P"`` or ``"D"``.
        node_level (LongTensor, optional): ``[N]`` levels from :func:`node_levels`, when already known
            (``"D"`` needs them to visit edges in topological order).

    Returns:
        ``line_edge_index`` ``[2, L]``: rows ``(e_in, e_out)``.
    """
    check_edge_index(edge_index, num_nodes)
    if mode not in ("P", "D"):
        raise ValueError(f"mode: expected 'P' or 'D', got {mode!r}")
    check_line_graph_size(edge_index, num_nodes)  # before allocating (see MAX_LINE_EDGES)
    if node_level is not None:
        check_node_level(node_level, edge_index, num_nodes)
    full = full_line_graph(edge_index, num_nodes)
    if mode == "P":
        return full
    if node_level is None:
        node_level = node_levels(edge_index, num_nodes)
    return multitree_prune(full, node_level[edge_index[0]])


def full_line_graph(edge_index: Tensor, num_nodes: int) -> Tensor:
    ptr, edges_by_src = out_csr(edge_index, num_nodes)
    out_degree = ptr[1:] - ptr[:-1]
    meeting_node = edge_index[1]
    counts = out_degree[meeting_node]
    e_in = torch.repeat_interleave(torch.arange(edge_index.size(1), device=edge_index.device), counts)
    e_out = edges_by_src[expand_ranges(ptr[meeting_node], counts)]
    return torch.stack([e_in, e_out])


def multitree_prune(full: Tensor, line_node_level: Tensor) -> Tensor:
    """Greedy maximal multitree inside the full line graph ``full`` (see :func:`line_graph`)."""
    num_line_nodes = line_node_level.numel()
    device = full.device
    if full.size(1) == 0:
        return full
    e_in, e_out = full
    # Candidates grouped by target, in increasing e_in; rank = position within the target's group.
    order = torch.argsort(e_out * num_line_nodes + e_in)
    e_in, e_out = e_in[order], e_out[order]
    num_candidates = torch.bincount(e_out, minlength=num_line_nodes)
    group_start = torch.cumsum(num_candidates, 0) - num_candidates
    rank = torch.arange(e_out.numel(), device=device) - group_start[e_out]
    # The first candidate of every line node is always kept: nothing reaches the node before it. A node
    # with a single candidate therefore has exactly the ancestors of that candidate (plus the candidate),
    # so only the roots (no candidate) and the merge nodes (two or more) own an ancestor set; every other
    # node points at the owner above it along its chain of single candidates (pointer jumping, O(log)
    # steps). A chain of edges, whose line graph has no merge node, needs no per-level step at all.
    keep = rank == 0
    is_root = num_candidates == 0
    is_owner = num_candidates != 1
    first_parent = torch.full((num_line_nodes,), -1, dtype=torch.long, device=device)
    first_parent[e_out[keep]] = e_in[keep]
    owner = torch.where(is_owner, torch.arange(num_line_nodes, device=device), first_parent)
    while True:
        next_owner = owner[owner]
        if torch.equal(next_owner, owner):
            break
        owner = next_owner
    merge = num_candidates[e_out] >= 2
    if not bool(merge.any()):
        return full[:, order[keep]][:, torch.argsort(e_in[keep] * num_line_nodes + e_out[keep])]

    # Two ancestor sets of a multitree meet exactly when they share a root (walk up from a common
    # ancestor), so each owner carries the bitset of the roots above it, indexed locally within its weakly
    # connected component (roots never leave it).
    component = weak_components(full, num_line_nodes)
    roots = is_root.nonzero().view(-1)
    root_component = component[roots]
    by_component = torch.argsort(root_component, stable=True)
    roots_per_component = torch.bincount(root_component, minlength=num_line_nodes)
    starts = torch.cumsum(roots_per_component, 0) - roots_per_component
    local = torch.empty_like(roots)
    local[by_component] = torch.arange(roots.numel(), device=device) - starts[root_component[by_component]]
    words = max(1, math.ceil(int(roots_per_component.max()) / 63))
    owners = is_owner.nonzero().view(-1)
    slot = torch.full((num_line_nodes,), -1, dtype=torch.long, device=device)
    slot[owners] = torch.arange(owners.numel(), device=device)
    if owners.numel() * words * 8 > MAX_ANCESTOR_BYTES:
        raise ValueError(
            f"edge_index: D-mode pruning of a connected component with {int(roots_per_component.max())} root "
            f"edges needs {owners.numel() * words * 8 / 2**30:.1f} GiB of ancestor bitsets; use mode='P' for "
            "such graphs"
        )
    # 63 bits per word keeps every bit mask positive in int64 arithmetic.
    root_sets = torch.zeros(owners.numel(), words, dtype=torch.long, device=device)
    root_sets[slot[roots], local // 63] = torch.bitwise_left_shift(torch.ones_like(local), local % 63)

    # The candidates of merge nodes, grouped by (level of the target, rank): within a level the targets
    # are independent (their candidates lie on lower levels), and ranks are visited in order.
    merge_id = merge.nonzero().view(-1)
    target_level = line_node_level[e_out[merge_id]]
    merge_rank = rank[merge_id]
    max_rank = int(merge_rank.max()) + 1
    step = target_level * max_rank + merge_rank
    step, by_step = torch.sort(step, stable=True)
    merge_id = merge_id[by_step]
    bounds = torch.unique_consecutive(step, return_counts=True)[1].tolist()
    parent_slot = slot[owner[e_in[merge_id]]]
    child_slot = slot[e_out[merge_id]]
    merge_keep = torch.zeros_like(merge_id, dtype=torch.bool)
    lo = 0
    for count in bounds:
        hi = lo + count
        parent, child = parent_slot[lo:hi], child_slot[lo:hi]
        reach = root_sets[parent]
        disjoint = ~(reach & root_sets[child]).any(dim=1)
        merge_keep[lo:hi] = disjoint
        root_sets[child[disjoint]] |= reach[disjoint]
        lo = hi
    keep[merge_id] = merge_keep
    pruned = torch.stack([e_in[keep], e_out[keep]])
    # Back to the P line graph's order (grouped by e_in) so both modes list line edges alike.
    return pruned[:, torch.argsort(pruned[0] * num_line_nodes + pruned[1])]
