"""PLSTMConv on edge attributes that depend on direction, and orientation decided per graph of a batch."""

import pytest
import torch
from torch_geometric.data import Batch, Data
from torch_geometric.utils import to_undirected

from plstm_geometric.graph.structure import orient_edges
from plstm_geometric.nn import PLSTMConv
from plstm_geometric.testing import nci_batch


def randomized(conv):
    with torch.no_grad():
        conv.lin_gate.weight.normal_(0, 0.5)
        conv.lin_edge_gate.weight.normal_(0, 0.5)
    return conv.double()


@pytest.mark.parametrize("mode", ["P", "D"])
@pytest.mark.parametrize("reverse", [False, True])
def test_column_order_does_not_change_the_output_with_directed_edge_attributes(mode, reverse):
    torch.manual_seed(0)
    edge_index = to_undirected(torch.tensor([[0, 1, 2, 3, 0, 3, 4, 2], [1, 2, 3, 4, 4, 5, 5, 6]]))
    num_nodes = 7
    x = torch.randn(num_nodes, 8, dtype=torch.float64)
    # Each direction of every edge has its own attribute.
    edge_attr = torch.randn(edge_index.size(1), 3, dtype=torch.float64)
    conv = randomized(PLSTMConv(8, 8, heads=2, mode=mode, edge_dim=3, reverse=reverse))
    out = conv(x, edge_index, edge_attr)
    for seed in range(3):
        perm = torch.randperm(edge_index.size(1), generator=torch.Generator().manual_seed(seed))
        torch.testing.assert_close(conv(x, edge_index[:, perm], edge_attr[perm]), out, rtol=1e-12, atol=1e-12)


def test_dag_edges_take_the_attribute_of_their_own_direction():
    edge_index = torch.tensor([[1, 0, 2, 1], [0, 1, 1, 2]])  # 1->0 listed before 0->1
    dag_edge_index, edge_id = orient_edges(edge_index, 3)
    assert torch.equal(edge_index[:, edge_id], dag_edge_index)


def directed_graph():
    # A directed DAG with a diamond and a tail (no edge has its reverse).
    return Data(x=torch.randn(5, 8, dtype=torch.float64), edge_index=torch.tensor([[0, 0, 1, 2, 3], [1, 2, 3, 3, 4]]))


@pytest.mark.parametrize("mode", ["P", "D"])
def test_auto_orientation_is_decided_per_graph_of_a_batch(mode):
    torch.manual_seed(1)
    molecules = nci_batch(3).to_data_list()
    graphs = [Data(x=torch.randn(m.num_nodes, 8, dtype=torch.float64), edge_index=m.edge_index) for m in molecules]
    graphs.insert(1, directed_graph())
    conv = randomized(PLSTMConv(8, 8, heads=2, mode=mode))
    batch = Batch.from_data_list(graphs)
    out = conv(batch.x, batch.edge_index)
    alone = torch.cat([conv(g.x, g.edge_index) for g in graphs])
    torch.testing.assert_close(out, alone, rtol=1e-10, atol=1e-10)


def test_cycle_error_suggests_undirected_orientation():
    # A subgraph sampled from an undirected graph: some edges stored both ways, one only one way.
    edge_index = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 0]])
    with pytest.raises(ValueError, match="orientation='undirected'"):
        orient_edges(edge_index, 3)
    dag_edge_index, _ = orient_edges(edge_index, 3, orientation="undirected")
    assert dag_edge_index.tolist() == [[0, 0, 1], [1, 2, 2]]


def dependence(layers, num_nodes=6):
    """[N, N] bool: whether output node i depends on input node j, from the gradients of a stack of layers."""
    edge_index = to_undirected(torch.stack([torch.arange(num_nodes - 1), torch.arange(1, num_nodes)]))
    x = torch.randn(num_nodes, 8, dtype=torch.float64)
    rows = []
    for i in range(num_nodes):
        xi = x.clone().requires_grad_()
        h = xi
        for layer in layers:
            h = layer(h, edge_index)
        (grad,) = torch.autograd.grad(h[i].sum(), xi)
        rows.append(grad.abs().sum(1) > 0)
    return torch.stack(rows)


def test_same_direction_stack_sees_lower_indices_only_and_alternating_reverse_sees_all():
    torch.manual_seed(2)
    forward = [randomized(PLSTMConv(8, 8, heads=2)) for _ in range(2)]
    assert torch.equal(dependence(forward), torch.ones(6, 6, dtype=torch.bool).tril())
    alternating = [randomized(PLSTMConv(8, 8, heads=2)), randomized(PLSTMConv(8, 8, heads=2, reverse=True))]
    assert bool(dependence(alternating).all())
