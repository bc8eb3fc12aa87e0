"""PLSTMConv in the PyG ecosystem: Explainer edge masks, to_hetero, lazy in_channels, sparse adjacency
input, the backend / recompute_states options and the repr."""

import pytest
import torch
from torch_geometric.data import HeteroData
from torch_geometric.explain import Explainer, GNNExplainer
from torch_geometric.nn import global_add_pool, to_hetero
from torch_geometric.utils import to_undirected

from plstm_geometric.functional.dag import TORCH_BACKENDS
from plstm_geometric.nn import PLSTMConv


def graph(num_nodes=7, channels=6):
    edge_index = torch.tensor([[0, 1, 2, 3, 0, 3, 4, 2], [1, 2, 3, 4, 4, 5, 5, 6]])
    return torch.randn(num_nodes, channels), to_undirected(edge_index)


def randomize_gates(conv):
    with torch.no_grad():
        conv.lin_gate.weight.normal_(0, 0.5)
        conv.lin_edge_gate.weight.normal_(0, 0.5)
        conv.lin_gate.bias.zero_()


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = PLSTMConv(6, 8, heads=2)
        self.conv2 = PLSTMConv(8, 8, heads=2, reverse=True)

    def forward(self, x, edge_index):
        return self.conv2(self.conv1(x, edge_index).relu(), edge_index)


def test_edge_weight_scales_edge_state():
    conv = PLSTMConv(6, 8, heads=2, orientation="dag")
    randomize_gates(conv)
    x = torch.randn(4, 6)
    edge_index = torch.tensor([[0, 1, 0], [1, 2, 3]])
    base = conv(x, edge_index)
    torch.testing.assert_close(conv(x, edge_index, edge_weight=torch.ones(3)), base)
    # Weight 0 on 1 -> 2 is removing that edge: node 2 then has no incoming edge.
    dropped = conv(x, edge_index, edge_weight=torch.tensor([1.0, 0.0, 1.0]))
    removed = conv(x, edge_index[:, [0, 2]], edge_weight=torch.tensor([1.0, 1.0]))
    torch.testing.assert_close(dropped[2], removed[2])
    assert not torch.allclose(dropped[2], base[2])
    with pytest.raises(ValueError, match="edge_weight"):
        conv(x, edge_index, edge_weight=torch.ones(2))


def test_explainer_edge_mask_reaches_plstm_conv():
    model = Model()
    for conv in (model.conv1, model.conv2):
        randomize_gates(conv)
    x, edge_index = graph()
    explainer = Explainer(
        model,
        GNNExplainer(epochs=3),
        explanation_type="model",
        node_mask_type="attributes",
        edge_mask_type="object",
        model_config=dict(mode="regression", task_level="node", return_type="raw"),
    )
    explanation = explainer(x, edge_index, index=6)
    assert explanation.edge_mask.shape == (edge_index.size(1),)
    assert explanation.edge_mask.abs().sum() > 0
    assert model.conv1.explain is not True and model.conv1._edge_mask is None  # cleared after explaining


def test_to_hetero():
    data = HeteroData()
    data["atom"].x = torch.randn(6, 5)
    data["ion"].x = torch.randn(3, 5)
    ring = to_undirected(torch.tensor([[0, 1, 2, 3, 4], [1, 2, 3, 4, 5]]))
    data["atom", "bond", "atom"].edge_index = ring
    data["ion", "binds", "atom"].edge_index = torch.tensor([[0, 1, 2], [0, 2, 4]])
    data["atom", "rev_binds", "ion"].edge_index = torch.tensor([[0, 2, 4], [0, 1, 2]])

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = PLSTMConv(-1, 8, heads=2)

        def forward(self, x, edge_index):
            return self.conv(x, edge_index)

    model = to_hetero(Net(), data.metadata(), aggr="sum")
    out = model(data.x_dict, data.edge_index_dict)
    assert out["atom"].shape == (6, 8) and out["ion"].shape == (3, 8)
    # The homogeneous edge type alone equals the plain layer on that graph.
    conv = model.conv["atom__bond__atom"]
    bipartite = model.conv["ion__binds__atom"]
    torch.testing.assert_close(
        out["atom"],
        conv(data["atom"].x, ring)
        + bipartite((data["ion"].x, data["atom"].x), data["ion", "binds", "atom"].edge_index),
    )


def test_bipartite_pair_equals_joint_graph():
    conv = PLSTMConv(5, 8, heads=2)
    x_src, x_dst = torch.randn(3, 5), torch.randn(4, 5)
    edge_index = torch.tensor([[0, 1, 2, 2], [0, 0, 1, 3]])
    out = conv((x_src, x_dst), edge_index)
    joint = conv(torch.cat([x_src, x_dst]), torch.stack([edge_index[0], edge_index[1] + 3]))
    torch.testing.assert_close(out, joint[3:])
    with pytest.raises(ValueError, match="same number of features"):
        conv((x_src, torch.randn(4, 6)), edge_index)


def test_lazy_in_channels():
    torch.manual_seed(1)
    lazy = PLSTMConv(-1, 8, heads=2)
    x, edge_index = graph()
    out = lazy(x, edge_index)
    assert out.shape == (7, 8) and lazy.lin_gate.in_channels == 6
    assert lazy.lin_edge_gate.weight.shape == (8, 12)
    # The gates get their own small initialisation, not the default Linear one.
    assert lazy.lin_gate.weight.std() < 0.1 and lazy.lin_edge_gate.weight.std() < 0.1
    eager = PLSTMConv(6, 8, heads=2)
    eager.load_state_dict(lazy.state_dict())
    torch.testing.assert_close(eager(x, edge_index), out)
    with pytest.raises(ValueError, match="x: expected"):
        lazy(torch.randn(7, 5), edge_index)


@pytest.mark.parametrize("layout", ["coo", "csr"])
def test_sparse_adj_t_input(layout):
    conv = PLSTMConv(6, 8, heads=2, edge_dim=3, orientation="dag")
    randomize_gates(conv)
    x = torch.randn(5, 6)
    edge_index = torch.tensor([[0, 0, 1, 2, 3], [1, 2, 3, 3, 4]])  # a DAG: direction matters
    edge_attr = torch.randn(5, 3)
    # PyG's adj_t is the transposed adjacency: entry (dst, src). Its stored order is row-major.
    adj_t = torch.sparse_coo_tensor(edge_index.flip(0), torch.ones(5), (5, 5)).coalesce()
    order = (edge_index[1] * 5 + edge_index[0]).argsort()
    if layout == "csr":
        adj_t = adj_t.to_sparse_csr()
    out = conv(x, adj_t, edge_attr[order])
    torch.testing.assert_close(out, conv(x, edge_index, edge_attr))
    with pytest.raises(ValueError, match="edge_index: expected a sparse adjacency"):
        conv(x[:4], adj_t, edge_attr[order])


def test_sparse_coo_uncoalesced_with_edge_attr_refused():
    conv = PLSTMConv(6, 8, heads=2, edge_dim=3)
    adj_t = torch.sparse_coo_tensor(torch.tensor([[1, 0], [0, 1]]), torch.ones(2), (2, 2))
    with pytest.raises(ValueError, match="coalesced"):
        conv(torch.randn(2, 6), adj_t, torch.randn(2, 3))


@pytest.mark.parametrize("backend", TORCH_BACKENDS)
def test_backend_and_recompute_states(backend):
    x, edge_index = graph()
    reference = PLSTMConv(6, 8, heads=2)
    randomize_gates(reference)
    conv = PLSTMConv(6, 8, heads=2, backend=backend, recompute_states=True)
    conv.load_state_dict(reference.state_dict())
    x.requires_grad_()
    out = conv(x, edge_index)
    (grad,) = torch.autograd.grad(out.square().sum(), x)
    expected = reference(x, edge_index)
    (expected_grad,) = torch.autograd.grad(expected.square().sum(), x)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-5, atol=1e-6)


def test_backend_checked_and_repr():
    with pytest.raises(ValueError, match="backend"):
        PLSTMConv(6, 8, backend="fast")
    with pytest.raises(TypeError, match="recompute_states"):
        PLSTMConv(6, 8, recompute_states="yes")
    assert repr(PLSTMConv(6, 8, heads=2, edge_dim=3, backend="levels")) == (
        "PLSTMConv(6, 8, heads=2, mode=P, edge_dim=3, backend=levels)"
    )
    assert repr(PLSTMConv(-1, 8, heads=2)) == "PLSTMConv(-1, 8, heads=2, mode=P)"


def test_pooled_graph_model_with_explainer_graph_level():
    class GraphNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = PLSTMConv(6, 8, heads=2)

        def forward(self, x, edge_index, batch=None):
            return global_add_pool(self.conv(x, edge_index), batch).sum(-1, keepdim=True)

    x, edge_index = graph()
    explainer = Explainer(
        GraphNet(),
        GNNExplainer(epochs=2),
        explanation_type="model",
        edge_mask_type="object",
        model_config=dict(mode="regression", task_level="graph", return_type="raw"),
    )
    assert explainer(x, edge_index).edge_mask.shape == (edge_index.size(1),)
