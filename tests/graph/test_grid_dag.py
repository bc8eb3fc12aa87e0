import pytest
import torch

from plstm_geometric.graph import dagify, grid_dag, grid_plan, line_graph, node_levels
from plstm_geometric.graph.grid import grid_wavefronts


def undirected_grid(X, Y):
    node = torch.arange(X * Y).view(X, Y)
    pairs = torch.cat(
        [
            torch.stack([node[:-1].reshape(-1), node[1:].reshape(-1)]),
            torch.stack([node[:, :-1].reshape(-1), node[:, 1:].reshape(-1)]),
        ],
        dim=1,
    )
    return torch.cat([pairs, pairs.flip(0)], dim=1)


@pytest.mark.parametrize("X,Y", [(1, 1), (1, 4), (3, 1), (3, 4), (5, 5)])
def test_grid_dag_is_the_dagified_grid_with_its_full_line_graph(X, Y):
    grid = grid_dag(X, Y)
    # Node ids x * Y + y grow along both edge directions, so orienting by id gives the grid DAG.
    assert torch.equal(grid.edge_index, dagify(undirected_grid(X, Y), X * Y))
    expected = line_graph(grid.edge_index, X * Y, mode="P")
    assert sorted(map(tuple, grid.line_edge_index.t().tolist())) == sorted(map(tuple, expected.t().tolist()))
    assert torch.equal(grid.node_level, node_levels(grid.edge_index, X * Y))


def test_gate_index_maps_point_at_the_right_nodes_and_directions():
    X, Y = 3, 4
    grid = grid_dag(X, Y)
    src, dst = grid.edge_index
    direction = (dst - src == 1).long()  # 0: r-edge (dst = src + Y), 1: d-edge (dst = src + 1)
    assert torch.equal(grid.edge_source, 2 * src + direction)
    assert torch.equal(grid.edge_mark, 2 * dst + direction)
    e_in, e_out = grid.line_edge_index
    node = dst[e_in]
    assert torch.equal(node, src[e_out])
    kind = {(0, 0): 0, (1, 1): 1, (0, 1): 2, (1, 0): 3}  # rr, dd, rd, dr
    expected = torch.tensor(
        [4 * int(n) + kind[int(direction[i]), int(direction[o])] for n, i, o in zip(node, e_in, e_out)]
    )
    assert torch.equal(grid.line_transition, expected)


def test_batched_grid_is_a_disjoint_union_and_cached():
    single, batched = grid_dag(3, 2), grid_dag(3, 2, batch_size=3)
    num_edges = single.edge_index.size(1)
    for b in range(3):
        edges = slice(b * num_edges, (b + 1) * num_edges)
        assert torch.equal(batched.edge_index[:, edges], single.edge_index + 6 * b)
        assert torch.equal(batched.edge_source[edges], single.edge_source + 12 * b)
    assert torch.equal(batched.line_edge_index[:, : single.line_edge_index.size(1)], single.line_edge_index)
    assert grid_dag(3, 2, batch_size=3) is batched
    plan = grid_plan(3, 2, batch_size=3)
    assert plan.num_nodes == 18 and plan.num_levels == 3 and grid_plan(3, 2, batch_size=3) is plan


@pytest.mark.parametrize("X,Y", [(1, 3), (4, 2), (3, 5)])
def test_wavefronts_list_anti_diagonals_with_their_neighbours(X, Y):
    fronts = grid_wavefronts(X, Y)
    x, y = fronts.order // Y, fronts.order % Y
    for diagonal in range(X + Y - 1):
        cells = slice(fronts.ptr[diagonal], fronts.ptr[diagonal + 1])
        assert ((x[cells] + y[cells]) == diagonal).all()
        assert x[cells].tolist() == list(range(fronts.x_start[diagonal], fronts.x_start[diagonal] + len(x[cells])))
    assert torch.equal(fronts.order[fronts.inverse], torch.arange(X * Y))
    outside = X * Y
    for position in range(X * Y):
        for (dx, dy), successor, predecessor in zip(
            ((1, 0), (0, 1)), fronts.successor[position], fronts.predecessor[position]
        ):
            forward, backward = (x[position] + dx, y[position] + dy), (x[position] - dx, y[position] - dy)
            for (nx, ny), neighbour in ((forward, successor), (backward, predecessor)):
                inside = 0 <= nx < X and 0 <= ny < Y
                assert int(neighbour) == (int(fronts.inverse[nx * Y + ny]) if inside else outside)


def test_bad_sizes_raise_with_the_argument_name():
    with pytest.raises(ValueError, match="X"):
        grid_dag(0, 3)
    with pytest.raises(TypeError, match="Y"):
        grid_dag(3, 2.0)
    with pytest.raises(ValueError, match="batch_size"):
        grid_dag(3, 2, batch_size=0)
    with pytest.raises(TypeError, match="X"):
        grid_wavefronts(True, 2)
