"""The level sweep's memory is estimated from the plan and refused, with the figures, before anything is
allocated when the device cannot hold it (a hub meets every in-edge with every out-edge in one level)."""

import pytest
import torch

from plstm_geometric.functional import plstm_dag
from plstm_geometric.graph import build_plan, line_graph, size


def hub(fan_in: int, fan_out: int):
    """``fan_in`` nodes into one hub, the hub into ``fan_out`` nodes: ``fan_in * fan_out`` line edges, all
    in one level."""
    hub_node = fan_in
    sources = torch.arange(fan_in)
    targets = torch.arange(fan_in + 1, fan_in + 1 + fan_out)
    edge_index = torch.cat(
        [
            torch.stack([sources, torch.full_like(sources, hub_node)]),
            torch.stack([torch.full_like(targets, hub_node), targets]),
        ],
        1,
    )
    return edge_index, fan_in + 1 + fan_out


def inputs(num_nodes, num_edges, num_line_edges, heads=2, dim=4):
    return dict(
        query=torch.randn(num_nodes, heads, dim),
        key=torch.randn(num_nodes, heads, dim),
        value=torch.randn(num_nodes, heads, dim),
        source=torch.rand(num_edges, heads),
        transition=torch.rand(num_line_edges, heads),
        mark=torch.rand(num_edges, heads),
        direct=torch.rand(num_nodes, heads),
    )


def test_the_estimate_counts_the_widest_level():
    edge_index, num_nodes = hub(30, 40)
    line_edge_index = line_graph(edge_index, num_nodes)
    plan = build_plan(edge_index, line_edge_index, num_nodes)
    need, widest = size.level_sweep_memory(plan, heads=2, key_dim=4, value_dim=4, itemsize=4)
    assert widest == 30 * 40 == line_edge_index.size(1)
    assert need == 2 * 1200 * 2 * 16 * 4 + 4 * 70 * 2 * 16 * 4


def test_a_sweep_the_device_cannot_hold_is_refused_with_the_figures(monkeypatch):
    edge_index, num_nodes = hub(30, 40)
    line_edge_index = line_graph(edge_index, num_nodes)
    monkeypatch.setattr(size, "SWEEP_MEMORY_CHECK_BYTES", 0)
    monkeypatch.setattr(size, "available_memory", lambda device: 1000)
    args = inputs(num_nodes, edge_index.size(1), line_edge_index.size(1))
    message = r"^line_edge_index: the level sweep needs about .*\(1,200 line edges in its widest level"
    with pytest.raises(ValueError, match=message):
        plstm_dag(**args, edge_index=edge_index, line_edge_index=line_edge_index, backend="levels")
    # with the memory there, the same call runs
    monkeypatch.setattr(size, "available_memory", lambda device: 2**40)
    out = plstm_dag(**args, edge_index=edge_index, line_edge_index=line_edge_index, backend="levels")
    assert out.shape == (num_nodes, 2, 4)


def test_available_memory_is_read_on_this_machine():
    free = size.available_memory(torch.device("cpu"))
    assert free is None or free > 0


def test_a_layer_refuses_a_hub_from_its_degrees_before_building_the_line_graph(monkeypatch):
    from plstm_geometric.nn import PLSTMConv

    edge_index, num_nodes = hub(30, 40)
    monkeypatch.setattr(size, "SWEEP_MEMORY_CHECK_BYTES", 0)
    monkeypatch.setattr(size, "available_memory", lambda device: 1000)
    # mode D keeps far fewer pairs of a hub; the estimate from the degrees does not apply to it
    PLSTMConv(8, 8, heads=2, mode="D").structure(edge_index, num_nodes)

    def no_line_graph(*args, **kwargs):
        raise AssertionError("the line graph must not be built")

    monkeypatch.setattr("plstm_geometric.graph.structure.line_graph", no_line_graph, raising=False)
    conv = PLSTMConv(8, 8, heads=2)
    with pytest.raises(ValueError, match=r"^edge_index: the level sweep would need about .*\(1,200 line edges"):
        conv(torch.randn(num_nodes, 8), edge_index)
