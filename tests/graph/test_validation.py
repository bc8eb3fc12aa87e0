"""Structure arguments that used to be trusted: plans, levels, orders, and line-graph size."""

import pytest
import torch

from plstm_geometric.functional import plstm_dag
from plstm_geometric.graph import build_plan, dagify, line_graph, node_levels
from plstm_geometric.graph import size as graph_size
from plstm_geometric.graph.size import line_graph_size


def path_inputs(num_nodes, num_edges, num_line):
    g = torch.Generator().manual_seed(0)
    return dict(
        query=torch.randn(num_nodes, 1, 2, generator=g),
        key=torch.randn(num_nodes, 1, 2, generator=g),
        value=torch.randn(num_nodes, 1, 2, generator=g),
        source=torch.rand(num_edges, 1, generator=g),
        transition=torch.rand(num_line, 1, generator=g),
        mark=torch.rand(num_edges, 1, generator=g),
        direct=torch.rand(num_nodes, 1, generator=g),
    )


def test_plan_of_another_graph_with_the_same_sizes_is_refused():
    a = torch.tensor([[0, 1, 2], [1, 2, 3]])
    b = torch.tensor([[0, 0, 0], [1, 2, 3]])
    la, lb = line_graph(a, 4), line_graph(b, 4)
    c = torch.tensor([[1, 0, 2], [2, 1, 3]])  # a's edges in another order: same line graph size
    lc = line_graph(c, 4)
    inputs = path_inputs(4, 3, la.size(1))
    plan = build_plan(a, la, 4)
    plstm_dag(**inputs, edge_index=a, line_edge_index=la, plan=plan)
    plstm_dag(**inputs, edge_index=a.clone(), line_edge_index=la.clone(), plan=plan)  # equal copies are fine
    with pytest.raises(ValueError, match="^plan: .*another graph"):
        plstm_dag(**inputs, edge_index=c, line_edge_index=lc, plan=plan)
    extra = torch.tensor([[0, 1, 1], [1, 2, 3]])
    le = line_graph(extra, 4)
    assert le.size(1) == la.size(1)
    with pytest.raises(ValueError, match="^plan: .*another graph"):
        plstm_dag(**inputs, edge_index=extra, line_edge_index=le, plan=plan)
    assert lb.size(1) == 0


def test_build_plan_and_line_graph_refuse_wrong_levels():
    edge_index = torch.tensor([[0, 1, 0], [1, 2, 2]])
    levels = node_levels(edge_index, 3)
    line_edge_index = line_graph(edge_index, 3)
    build_plan(edge_index, line_edge_index, 3, node_level=levels)
    line_graph(edge_index, 3, "D", node_level=levels)
    for wrong in (torch.tensor([0, 1, 1]), torch.tensor([2, 1, 0]), torch.tensor([0, 1, 3]), torch.tensor([1, 2, 3])):
        with pytest.raises(ValueError, match="^node_level: expected the longest-path levels"):
            build_plan(edge_index, line_edge_index, 3, node_level=wrong)
        with pytest.raises(ValueError, match="^node_level: expected the longest-path levels"):
            line_graph(edge_index, 3, "D", node_level=wrong)
    with pytest.raises(TypeError, match="^node_level: expected dtype torch.long"):
        build_plan(edge_index, line_edge_index, 3, node_level=levels.float())
    with pytest.raises(ValueError, match=r"^node_level: expected shape \[3\]"):
        line_graph(edge_index, 3, "D", node_level=levels[:2])


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_dagify_refuses_non_finite_order(bad):
    edge_index = torch.tensor([[0, 1, 1, 2, 2, 0], [1, 0, 2, 1, 0, 2]])
    order = torch.tensor([0.5, bad, 0.2])
    with pytest.raises(ValueError, match="^order: expected finite ranks"):
        dagify(edge_index, 3, order=order)
    node_levels(dagify(edge_index, 3, order=torch.tensor([0.5, 0.1, 0.2])), 3)


def test_line_graph_size_is_estimated_before_allocating(monkeypatch):
    # A hub with 300 in- and 300 out-edges: 90,000 line edges.
    hub = 300
    edge_index = torch.cat(
        [
            torch.stack([torch.arange(hub), torch.full((hub,), hub)]),
            torch.stack([torch.full((hub,), hub), torch.arange(hub + 1, 2 * hub + 1)]),
        ],
        1,
    )
    assert line_graph_size(edge_index, 2 * hub + 1) == hub * hub
    assert line_graph(edge_index, 2 * hub + 1).size(1) == hub * hub
    monkeypatch.setattr(graph_size, "MAX_LINE_EDGES", 10_000)
    for mode in ("P", "D"):
        with pytest.raises(
            ValueError, match="^edge_index: its line graph would have 90,000 line edges.*MAX_LINE_EDGES"
        ):
            line_graph(edge_index, 2 * hub + 1, mode)


def test_a_hub_of_50k_edges_each_way_fails_fast():
    hub = 50_000
    edge_index = torch.cat(
        [
            torch.stack([torch.arange(hub), torch.full((hub,), hub)]),
            torch.stack([torch.full((hub,), hub), torch.arange(hub + 1, 2 * hub + 1)]),
        ],
        1,
    )
    with pytest.raises(ValueError, match="2,500,000,000 line edges"):
        line_graph(edge_index, 2 * hub + 1)


def test_auto_orientation_cycle_message_points_to_undirected():
    from plstm_geometric.graph.structure import orient_edges

    # Undirected but for one reverse edge missing.
    edge_index = torch.tensor([[0, 1, 1, 2, 2], [1, 0, 2, 1, 0]])
    with pytest.raises(ValueError, match="orientation='undirected'"):
        orient_edges(edge_index, 3, "auto", None)
