import time

import pytest
import torch
from torch_geometric.utils import to_undirected

from plstm_geometric.graph import dagify, node_levels, reverse_dag
from plstm_geometric.testing import random_ordered_dag as random_dag


def test_dagify_keeps_each_undirected_edge_once_from_low_to_high():
    edge_index = torch.tensor([[0, 1, 1, 2, 2, 2, 3], [1, 0, 2, 1, 2, 3, 2]])
    dag, edge_id = dagify(edge_index, 4, return_edge_id=True)
    assert dag.tolist() == [[0, 1, 2], [1, 2, 3]]
    assert torch.equal(edge_index[:, edge_id].sort(0).values, dag)
    assert edge_id.tolist() == [0, 2, 5]


def test_dagify_with_order_follows_the_ranks():
    edge_index = to_undirected(torch.tensor([[0, 1, 2], [1, 2, 3]]))
    order = torch.tensor([3.0, 2.0, 1.0, 0.0])
    dag = dagify(edge_index, 4, order=order)
    assert sorted(map(tuple, dag.t().tolist())) == [(1, 0), (2, 1), (3, 2)]
    # Ties fall back to the node index.
    dag = dagify(edge_index, 4, order=torch.zeros(4))
    assert sorted(map(tuple, dag.t().tolist())) == [(0, 1), (1, 2), (2, 3)]


def test_dagify_output_is_acyclic_and_covers_the_graph():
    edge_index = to_undirected(random_dag(200, 800))
    order = torch.randperm(200).float()
    dag = dagify(edge_index, 200, order=order)
    node_levels(dag, 200)
    assert torch.equal(to_undirected(dag, num_nodes=200), edge_index)


def test_reverse_dag():
    edge_index = torch.tensor([[0, 1], [1, 2]])
    assert reverse_dag(edge_index).tolist() == [[1, 2], [0, 1]]


def test_node_levels_are_longest_paths():
    edge_index = torch.tensor([[0, 1, 0, 2, 3], [1, 2, 2, 3, 4]])
    assert node_levels(edge_index, 6).tolist() == [0, 1, 2, 3, 4, 0]


def test_node_levels_match_networkx_on_random_dags():
    networkx = pytest.importorskip("networkx")
    edge_index = random_dag(300, 1500, seed=3)
    graph = networkx.DiGraph()
    graph.add_nodes_from(range(300))
    graph.add_edges_from(edge_index.t().tolist())
    expected = [0] * 300
    for node in networkx.topological_sort(graph):
        for succ in graph.successors(node):
            expected[succ] = max(expected[succ], expected[node] + 1)
    assert node_levels(edge_index, 300).tolist() == expected


def test_cycle_raises_naming_a_node_on_it():
    edge_index = torch.tensor([[0, 1, 2, 3, 4], [1, 2, 3, 1, 0]])  # cycle 1 -> 2 -> 3 -> 1, fed from 4 -> 0
    with pytest.raises(ValueError, match=r"cycle through node [123]\b"):
        node_levels(edge_index, 5)
    with pytest.raises(ValueError, match="cycle through node 0"):
        node_levels(torch.tensor([[0], [0]]), 1)


@pytest.mark.parametrize(
    "bad, error, match",
    [
        (torch.tensor([[0, 1], [1, 5]]), ValueError, r"edge_index: expected node indices in \[0, 3\)"),
        (torch.tensor([[0, 1], [1, -1]]), ValueError, "edge_index: expected node indices"),
        (torch.tensor([[0.0, 1.0], [1.0, 2.0]]), TypeError, "edge_index: expected dtype torch.long"),
        (torch.tensor([0, 1, 2]), ValueError, r"edge_index: expected shape \[2, \*\]"),
    ],
)
def test_bad_edge_index(bad, error, match):
    for fn in (lambda: node_levels(bad, 3), lambda: dagify(bad, 3)):
        with pytest.raises(error, match=match):
            fn()


def test_bad_order_shape():
    with pytest.raises(ValueError, match="order: expected a tensor of shape"):
        dagify(torch.tensor([[0], [1]]), 2, order=torch.zeros(3))


def test_empty_graph():
    empty = torch.empty(2, 0, dtype=torch.long)
    assert node_levels(empty, 3).tolist() == [0, 0, 0]
    assert dagify(empty, 3).shape == (2, 0)
    assert node_levels(empty, 0).numel() == 0


def test_levels_of_a_large_random_dag_are_fast():
    edge_index = random_dag(200_000, 500_000)
    start = time.perf_counter()
    levels = node_levels(edge_index, 200_000)
    assert time.perf_counter() - start < 20
    assert bool((levels[edge_index[0]] < levels[edge_index[1]]).all())
