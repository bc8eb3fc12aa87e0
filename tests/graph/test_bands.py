"""The banded form at every band width: against the level sweep, its gradients and its layout."""

import pytest
import torch

from plstm_geometric.functional import plstm_dag
from plstm_geometric.graph import build_plan, line_graph
from plstm_geometric.graph.bands import build_band_layout
from plstm_geometric.testing import NAMES, batch_of_graphs, chain_dag, grid_dag, random_inputs


def plan_with_bands(edge_index, line_edge_index, num_nodes, band_levels):
    plan = build_plan(edge_index, line_edge_index, num_nodes)
    plan.cached_bands = build_band_layout(edge_index, line_edge_index, num_nodes, plan.node_level, band_levels)
    return plan


def output_and_grads(inputs, edge_index, line_edge_index, plan, backend):
    leaves = {name: t.detach().clone().requires_grad_() for name, t in inputs.items()}
    out = plstm_dag(**leaves, edge_index=edge_index, line_edge_index=line_edge_index, plan=plan, backend=backend)
    weight = torch.randn(out.shape, generator=torch.Generator().manual_seed(5), dtype=out.dtype)
    (out * weight).sum().backward()
    return [out] + [leaves[name].grad for name in NAMES]


def graphs():
    num_nodes, edge_index, generator = batch_of_graphs(12, seed=4, max_nodes=40)
    yield "batch", num_nodes, edge_index, generator
    yield "chain", 40, chain_dag(40), torch.Generator().manual_seed(1)
    yield "grid", 30, grid_dag(5, 6), torch.Generator().manual_seed(2)


@pytest.mark.parametrize("band_levels", [1, 2, 3, 8, 1000])
@pytest.mark.parametrize("mode", ["P", "D"])
def test_every_band_width_agrees_with_the_level_sweep(band_levels, mode):
    for name, num_nodes, edge_index, generator in graphs():
        line_edge_index = line_graph(edge_index, num_nodes, mode)
        inputs = random_inputs(num_nodes, edge_index, line_edge_index, generator=generator)
        plan = plan_with_bands(edge_index, line_edge_index, num_nodes, band_levels)
        expected = output_and_grads(inputs, edge_index, line_edge_index, plan, "levels")
        got = output_and_grads(inputs, edge_index, line_edge_index, plan, "bands")
        for what, a, b in zip(["out", *NAMES], got, expected):
            torch.testing.assert_close(a, b, atol=1e-10, rtol=0, msg=f"{name} {what}")


@pytest.mark.parametrize("double", [False, True])
def test_gradients_across_bands(double):
    # Two-level bands on a grid: every piece has inputs, so the carried states and their backward (and
    # its tracked form, for the second derivative) are exercised.
    edge_index = grid_dag(4, 4)
    line_edge_index = line_graph(edge_index, 16, "P")
    inputs = random_inputs(
        16, edge_index, line_edge_index, heads=1, k=2, v=2, generator=torch.Generator().manual_seed(0)
    )
    plan = plan_with_bands(edge_index, line_edge_index, 16, 2)
    assert plan.bands.num_exports and plan.bands.link_src.numel()
    leaves = tuple(inputs[name].requires_grad_() for name in NAMES)

    def fn(*args):
        return plstm_dag(*args, edge_index=edge_index, line_edge_index=line_edge_index, plan=plan, backend="bands")

    check = torch.autograd.gradgradcheck if double else torch.autograd.gradcheck
    assert check(fn, leaves)


def test_layout_covers_every_edge_once_and_links_only_look_back():
    num_nodes, edge_index, _ = batch_of_graphs(10, seed=7, max_nodes=40)
    line_edge_index = line_graph(edge_index, num_nodes, "P")
    plan = build_plan(edge_index, line_edge_index, num_nodes)
    layout = build_band_layout(edge_index, line_edge_index, num_nodes, plan.node_level, band_levels=2)
    assert torch.equal(layout.edge_id.sort().values, torch.arange(edge_index.size(1)))
    for bucket in layout.buckets:
        # inside a piece, line edges run from a lower to a higher slot: a strictly lower triangle
        entry = bucket.line_entry % (bucket.max_edges * bucket.max_edges)
        assert bool((entry // bucket.max_edges > entry % bucket.max_edges).all())
    band_of_export = torch.repeat_interleave(
        torch.arange(layout.num_bands), torch.tensor(layout.export_band_ptr).diff()
    )
    assert bool((band_of_export[layout.link_src] < band_of_export[layout.link_dst]).all())
    # inside pieces plus crossing into them: every line edge once
    crossing = layout.link_src.numel()
    assert layout.line_id.numel() + crossing <= line_edge_index.size(1)
