import time

import pytest
import torch

from plstm_geometric.graph import build_plan, line_graph, node_levels
from plstm_geometric.testing import golden_path
from plstm_geometric.testing import random_ordered_dag as random_dag


def pairs(line_edge_index):
    return sorted(map(tuple, line_edge_index.t().tolist()))


def all_paths_count(line_edge_index, num_line_nodes):
    """paths[a][b]: number of directed paths a -> b (a != b), by dynamic programming in topological order."""
    import networkx

    graph = networkx.DiGraph()
    graph.add_nodes_from(range(num_line_nodes))
    graph.add_edges_from(line_edge_index.t().tolist())
    paths = torch.zeros(num_line_nodes, num_line_nodes, dtype=torch.long)
    for node in networkx.topological_sort(graph):
        for pred in graph.predecessors(node):
            paths[:, node] += paths[:, pred]
            paths[pred, node] += 1
    return paths


def test_p_line_graph_pairs_every_meeting():
    edge_index = torch.tensor([[0, 0, 1, 2, 1], [1, 2, 3, 3, 2]])
    assert pairs(line_graph(edge_index, 4)) == [(0, 2), (0, 4), (1, 3), (4, 3)]


def test_golden_line_graphs():
    cases = torch.load(golden_path("dag_public.pt"), weights_only=True)
    for case in cases:
        computed = line_graph(case["edge_index"], case["num_nodes"], mode=case["mode"])
        assert pairs(computed) == pairs(case["line_edge_index"]), case["name"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_d_line_graph_is_a_maximal_multitree(seed):
    edge_index = random_dag(40, 120, seed=seed)
    full = line_graph(edge_index, 40, mode="P")
    pruned = line_graph(edge_index, 40, mode="D")
    num_line_nodes = edge_index.size(1)
    assert set(pairs(pruned)) <= set(pairs(full))
    assert int(all_paths_count(pruned, num_line_nodes).max()) <= 1
    # Maximality: adding back any dropped pair creates a second path between some two line nodes.
    for dropped in set(pairs(full)) - set(pairs(pruned)):
        extended = torch.cat([pruned, torch.tensor(dropped).view(2, 1)], dim=1)
        assert int(all_paths_count(extended, num_line_nodes).max()) >= 2, dropped


def test_d_line_graph_of_a_tree_keeps_everything():
    edge_index = torch.tensor([[0, 0, 1, 1, 2], [1, 2, 3, 4, 5]])
    assert pairs(line_graph(edge_index, 6, "D")) == pairs(line_graph(edge_index, 6, "P"))


def test_bad_mode():
    with pytest.raises(ValueError, match="mode: expected 'P' or 'D'"):
        line_graph(torch.tensor([[0], [1]]), 2, mode="Q")


def test_empty_edges_give_empty_line_graphs():
    empty = torch.empty(2, 0, dtype=torch.long)
    for mode in "PD":
        assert line_graph(empty, 4, mode).shape == (2, 0)


def test_line_graph_and_plan_of_a_million_edges_in_seconds():
    edge_index = random_dag(400_000, 1_000_000, seed=5)
    start = time.perf_counter()
    line_edge_index = line_graph(edge_index, 400_000)
    levels = node_levels(edge_index, 400_000)
    plan = build_plan(edge_index, line_edge_index, 400_000, node_level=levels)
    elapsed = time.perf_counter() - start
    assert line_edge_index.size(1) > 1_000_000
    assert plan.num_levels == int(levels.max())
    assert elapsed < 30, f"took {elapsed:.1f} s"


def test_d_line_graph_of_a_large_random_dag():
    # Every node draws 3 parents among the 1,000 nodes before it: one component, 300,000 edges.
    generator = torch.Generator().manual_seed(0)
    child = torch.arange(1, 100_000).repeat_interleave(3)
    parent = child - 1 - (torch.rand(child.numel(), generator=generator) * child.clamp(max=1000)).long()
    edge_index = torch.unique(torch.stack([parent, child]), dim=1)
    start = time.perf_counter()
    pruned = line_graph(edge_index, 100_000, "D")
    assert time.perf_counter() - start < 30
    full = line_graph(edge_index, 100_000, "P")
    assert 0 < pruned.size(1) < full.size(1)
    # Every line node that has a candidate predecessor keeps at least one.
    has_candidate = torch.bincount(full[1], minlength=edge_index.size(1)) > 0
    kept = torch.bincount(pruned[1], minlength=edge_index.size(1)) > 0
    assert torch.equal(has_candidate, kept)
