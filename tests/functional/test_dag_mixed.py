"""The mixed backend: small graphs through the parallel form, large ones through the level sweep."""

import torch

from plstm_geometric.functional.dag import PARALLEL_MAX_EDGES, choose_backend
from plstm_geometric.graph import build_plan, line_graph
from plstm_geometric.testing import NAMES, batch_of_graphs, forward_and_grads, random_graph, random_inputs


def small_and_large_batch(mode="P"):
    num_nodes, edge_index, generator = batch_of_graphs(30, seed=5, max_nodes=20)
    # Two graphs with more edges than the parallel form takes, in the middle and at the end of the batch.
    large = [random_graph(90, 200, generator), random_graph(70, 160, generator)]
    edge_index = torch.cat(
        [edge_index[:, :40], large[0] + num_nodes, edge_index[:, 40:], large[1] + num_nodes + 90], dim=1
    )
    num_nodes += 160
    return num_nodes, edge_index, line_graph(edge_index, num_nodes, mode), generator


def test_auto_picks_mixed_for_small_graphs_with_one_large_one():
    num_nodes, edge_index, line_edge_index, _ = small_and_large_batch()
    plan = build_plan(edge_index, line_edge_index, num_nodes)
    assert plan.layout.max_edges > PARALLEL_MAX_EDGES
    assert choose_backend(plan) == "mixed"


def test_mixed_equals_levels_forward_and_gradients():
    for mode in ("P", "D"):
        num_nodes, edge_index, line_edge_index, generator = small_and_large_batch(mode)
        inputs = random_inputs(num_nodes, edge_index, line_edge_index, generator=generator)
        expected, expected_grads = forward_and_grads(inputs, edge_index, line_edge_index, "levels")
        for backend in ("mixed", "auto"):
            out, grads = forward_and_grads(inputs, edge_index, line_edge_index, backend)
            torch.testing.assert_close(out, expected, atol=1e-10, rtol=0)
            for name in NAMES:
                torch.testing.assert_close(grads[name], expected_grads[name], atol=1e-10, rtol=0, msg=name)
