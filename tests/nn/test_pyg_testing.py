"""PyG's own module check, torch_geometric.testing.assert_module, on PLSTMConv: the output has the expected shape,
does not depend on the order of the columns of edge_index (with their edge attributes), and is the same for the
sparse adjacency layouts PyG's layers take (torch CSR from a CSC matrix, torch COO, and torch_sparse's
SparseTensor where it is installed)."""

import pytest
import torch
from torch_geometric.testing import assert_module
from torch_geometric.utils import to_undirected

from plstm_geometric.nn import PLSTMConv

MODES = ["P", "D", "unconstrained"]


def molecule_like(num_nodes=9):
    # A ring with two branches, both directions stored, as PyG stores molecules.
    ring = [(i, (i + 1) % 6) for i in range(6)]
    edges = torch.tensor(ring + [(2, 6), (6, 7), (4, 8)]).t()
    return to_undirected(edges, num_nodes=num_nodes)


def dag():
    return torch.tensor([[0, 0, 1, 2, 2, 3, 4], [1, 2, 3, 3, 4, 5, 5]])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("graph", ["molecule", "dag"])
def test_assert_module_edge_permutation_and_sparse_layouts(mode, reverse, graph):
    edge_index = molecule_like() if graph == "molecule" else dag()
    num_nodes = int(edge_index.max()) + 1
    conv = PLSTMConv(8, 12, heads=2, mode=mode, reverse=reverse)
    x = torch.randn(num_nodes, 8)
    out = assert_module(
        conv,
        x,
        edge_index,
        expected_size=(num_nodes, 12),
        test_edge_permutation=True,
        test_sparse_layouts=["torch_sparse", torch.sparse_csc, torch.sparse_coo],
    )
    assert bool(torch.isfinite(out).all())


@pytest.mark.parametrize("mode", MODES)
def test_assert_module_with_edge_attributes(mode):
    # Edge attributes travel with their columns when assert_module permutes them; a sparse adjacency carries no
    # attributes, so the layouts are checked in the test above.
    edge_index = molecule_like()
    edge_attr = torch.randn(edge_index.size(1), 5)
    conv = PLSTMConv(8, 12, heads=2, mode=mode, edge_dim=5)
    assert_module(
        conv,
        torch.randn(9, 8),
        edge_index,
        expected_size=(9, 12),
        test_edge_permutation=True,
        test_sparse_layouts=[],
        edge_attr=edge_attr,
    )
