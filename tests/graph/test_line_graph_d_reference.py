"""The D-mode line graph against the previous implementation (one vectorised step per level and rank, ancestor
bitsets on every line node), kept here as the oracle."""

import math

import pytest
import torch

from plstm_geometric.graph import line_graph, node_levels
from plstm_geometric.graph.dag import weak_components
from plstm_geometric.graph.line_graph import full_line_graph


def reference_multitree_prune(full, line_node_level):
    num_line_nodes = line_node_level.numel()
    device = full.device
    if full.size(1) == 0:
        return full
    is_root = torch.bincount(full[1], minlength=num_line_nodes) == 0
    component = weak_components(full, num_line_nodes)
    roots = is_root.nonzero().view(-1)
    root_component = component[roots]
    by_component = torch.argsort(root_component, stable=True)
    roots_per_component = torch.bincount(root_component, minlength=num_line_nodes)
    starts = torch.cumsum(roots_per_component, 0) - roots_per_component
    local = torch.empty_like(roots)
    local[by_component] = torch.arange(roots.numel(), device=device) - starts[root_component[by_component]]
    words = max(1, math.ceil(int(roots_per_component.max()) / 63))
    root_sets = torch.zeros(num_line_nodes, words, dtype=torch.long, device=device)
    root_sets[roots, local // 63] = torch.bitwise_left_shift(torch.ones_like(local), local % 63)
    e_in, e_out = full
    key = (line_node_level[e_out] * num_line_nodes + e_out) * num_line_nodes + e_in
    order = torch.argsort(key)
    e_in, e_out = e_in[order], e_out[order]
    group_start = torch.ones_like(e_out, dtype=torch.bool)
    group_start[1:] = e_out[1:] != e_out[:-1]
    group_id = torch.cumsum(group_start, 0) - 1
    first_of_group = group_start.nonzero().view(-1)
    rank = torch.arange(e_out.numel(), device=device) - first_of_group[group_id]
    target_level = line_node_level[e_out]
    level_ptr = torch.searchsorted(target_level, torch.arange(int(target_level.max()) + 2, device=device)).tolist()
    max_rank = int(rank.max()) + 1
    keep = torch.zeros_like(e_in, dtype=torch.bool)
    for level in range(len(level_ptr) - 1):
        lo, hi = level_ptr[level], level_ptr[level + 1]
        if lo == hi:
            continue
        level_rank = rank[lo:hi]
        for r in range(max_rank):
            candidates = (level_rank == r).nonzero().view(-1) + lo
            if candidates.numel() == 0:
                break
            parent, child = e_in[candidates], e_out[candidates]
            reach = root_sets[parent]
            disjoint = ~(reach & root_sets[child]).any(dim=1)
            keep[candidates[disjoint]] = True
            root_sets[child[disjoint]] |= reach[disjoint]
    pruned = torch.stack([e_in[keep], e_out[keep]])
    return pruned[:, torch.argsort(pruned[0] * num_line_nodes + pruned[1])]


def reference_line_graph_d(edge_index, num_nodes):
    levels = node_levels(edge_index, num_nodes)
    return reference_multitree_prune(full_line_graph(edge_index, num_nodes), levels[edge_index[0]])


def random_dag(num_nodes, num_edges, seed):
    generator = torch.Generator().manual_seed(seed)
    a = torch.randint(0, num_nodes, (num_edges,), generator=generator)
    b = torch.randint(0, num_nodes, (num_edges,), generator=generator)
    keep = a != b
    # Orient by a random rank so that edge ids are not sorted by node.
    rank = torch.randperm(num_nodes, generator=generator)
    a, b = a[keep], b[keep]
    forward = rank[a] < rank[b]
    return torch.stack([torch.where(forward, a, b), torch.where(forward, b, a)])


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("num_nodes,num_edges", [(12, 30), (60, 150), (300, 1200), (2000, 5000)])
def test_equals_the_reference_on_random_dags(num_nodes, num_edges, seed):
    edge_index = random_dag(num_nodes, num_edges, seed)
    assert torch.equal(line_graph(edge_index, num_nodes, mode="D"), reference_line_graph_d(edge_index, num_nodes))


def test_equals_the_reference_on_a_batch_of_chains_trees_and_dense_dags():
    parts, offset = [], 0
    for edge_index, num_nodes in [
        (torch.stack([torch.arange(40), torch.arange(1, 41)]), 41),  # chain
        (torch.stack([torch.arange(1, 31) // 2, torch.arange(1, 31)]), 31),  # out-tree
        (torch.stack([torch.arange(1, 31), torch.arange(1, 31) // 2]).flip(1), 31),  # in-tree
        (torch.triu_indices(9, 9, 1), 9),  # complete DAG
        (random_dag(50, 200, 7), 50),
    ]:
        parts.append(edge_index + offset)
        offset += num_nodes
    edge_index = torch.cat(parts, dim=1)
    assert torch.equal(line_graph(edge_index, offset, mode="D"), reference_line_graph_d(edge_index, offset))


def test_a_long_chain_is_about_as_fast_as_p_mode():
    import time

    num_nodes = 100_000
    edge_index = torch.stack([torch.arange(num_nodes - 1), torch.arange(1, num_nodes)])
    start = time.perf_counter()
    p = line_graph(edge_index, num_nodes, mode="P")
    p_time = time.perf_counter() - start
    start = time.perf_counter()
    d = line_graph(edge_index, num_nodes, mode="D")
    d_time = time.perf_counter() - start
    assert torch.equal(d, p)
    # Generous factor for a loaded machine; the per-level loop took over 300 times P here.
    assert d_time < 30 * p_time + 0.5
