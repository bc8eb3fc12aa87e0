import pytest
import torch
from ogb.utils import smiles2graph
from ogb.utils.features import get_atom_feature_dims
from torch_geometric.data import Batch, Data

from plstm_geometric.models import GCN, GIN, GINE, GatedGCN, GINVirtual, PLSTMGraphModel
from plstm_geometric.nn import BondGCNConv

SMILES = ["CCO", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1", "C1CC1N"]


def mol(smiles: str) -> Data:
    graph = smiles2graph(smiles)
    return Data(
        x=torch.from_numpy(graph["node_feat"]),
        edge_index=torch.from_numpy(graph["edge_index"]),
        edge_attr=torch.from_numpy(graph["edge_feat"]),
        num_nodes=graph["num_nodes"],
    )


def mol_batch() -> Batch:
    return Batch.from_data_list([mol(s) for s in SMILES])


def num_parameters(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("model_class", [GIN, GINVirtual, GCN, GINE, GatedGCN])
def test_output_shape_and_gradient(model_class):
    model = model_class(32, 3, num_layers=3)
    out = model(mol_batch())
    assert out.shape == (len(SMILES), 3)
    (out * torch.randn_like(out)).sum().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().max() > 0, name


@pytest.mark.parametrize(
    "model_class, virtual_node, ogb_leaderboard",
    [(GIN, False, 1_885_206), (GINVirtual, True, 3_336_306), (GCN, False, 527_701), (GCN, True, 1_978_801)],
)
def test_parameter_count_matches_ogb_reference(model_class, virtual_node, ogb_leaderboard):
    # The leaderboard counts (ogbg-molhiv, 300 channels, 5 layers) were taken with an atom vocabulary
    # of 173 entries; ogb>=1.3 added a 'misc' chirality tag, one more 300-wide embedding row.
    extra_rows = sum(get_atom_feature_dims()) - 173
    model = model_class(300, 1, 5, virtual_node=virtual_node)
    assert num_parameters(model) == ogb_leaderboard + 300 * extra_rows


@pytest.mark.parametrize("model_class", [GIN, GINVirtual, GCN, GINE, GatedGCN])
def test_graphs_in_a_batch_are_independent_and_node_order_is_irrelevant(model_class):
    model = model_class(16, 2, num_layers=2).eval()
    batched = model(mol_batch())
    data = mol(SMILES[2])
    alone = model(Batch.from_data_list([data]))
    assert torch.allclose(batched[2], alone[0], atol=1e-5)

    perm = torch.randperm(data.num_nodes)
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(data.num_nodes)
    permuted = Data(
        x=data.x[perm], edge_index=inverse[data.edge_index], edge_attr=data.edge_attr, num_nodes=data.num_nodes
    )
    assert torch.allclose(model(Batch.from_data_list([permuted])), alone, atol=1e-5)


def node_embeddings(model, data):
    captured = {}
    handle = model.norms[-1].register_forward_hook(lambda module, inputs, output: captured.update(h=output))
    model(Batch.from_data_list([data]))
    handle.remove()
    return captured["h"]


def test_virtual_node_connects_disconnected_nodes():
    # two atoms without a bond: only the virtual node can carry information from one to the other
    data = Data(
        x=torch.tensor([[5, 0, 4, 5, 3, 0, 2, 0, 0], [7, 0, 4, 5, 3, 0, 2, 0, 0]]),
        edge_index=torch.empty(2, 0, dtype=torch.long),
        edge_attr=torch.empty(0, 3, dtype=torch.long),
    )
    changed = data.clone()
    changed.x[1, 0] = 16
    for model_class, connected in [(GIN, False), (GINVirtual, True)]:
        model = model_class(16, 1, num_layers=3).eval()
        for norm in model.modules():
            if isinstance(norm, torch.nn.BatchNorm1d):
                # non-trivial running statistics so that eval-mode batch norm does not hide anything
                norm.running_mean.uniform_(-1, 1)
        before, after = node_embeddings(model, data), node_embeddings(model, changed)
        assert torch.allclose(before[0], after[0]) != connected
        assert not torch.allclose(before[1], after[1])


def test_bond_gcn_conv_matches_formula():
    conv = BondGCNConv(4)
    torch.nn.init.normal_(conv.root)
    x = torch.randn(3, 4)
    edge_index = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])
    edge_embedding = torch.randn(4, 4)
    out = conv(x, edge_index, edge_embedding)

    lin = conv.lin(x)
    deg = torch.tensor([1.0, 2.0, 1.0]) + 1
    expected = torch.relu(lin + conv.root) / deg[:, None]
    for e, (j, i) in enumerate(edge_index.t().tolist()):
        expected[i] += torch.relu(lin[j] + edge_embedding[e]) / (deg[i] * deg[j]).sqrt()
    assert torch.allclose(out, expected, atol=1e-6)
    assert torch.allclose(conv(x, edge_index), conv(x, edge_index, torch.zeros(4, 4)))


@pytest.mark.parametrize("edge_dim", [None, 2])
def test_linear_encoder_with_float_features(edge_dim):
    data = Data(
        x=torch.randn(5, 7),
        edge_index=torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]]),
        edge_attr=torch.randn(4, 2) if edge_dim else None,
    )
    for model_class in [GIN, GINVirtual, GCN]:
        model = model_class(8, 2, num_layers=2, encoder="linear", in_channels=7, edge_dim=edge_dim, pool="sum")
        assert model(Batch.from_data_list([data, data])).shape == (2, 2)
        assert len(model.edge_encoders) == (2 if edge_dim else 0)


def test_reset_parameters_restores_initialisation():
    model = GINVirtual(8, 1, num_layers=2)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(3.0)
    model.reset_parameters()
    assert torch.equal(model.virtual_embedding.weight, torch.zeros(1, 8))
    assert model.convs[0].eps.item() == 0.0
    assert (model.node_encoder.atom_embedding_list[0].weight != 3.0).all()
    assert (model.edge_encoders[1].bond_embedding_list[0].weight != 3.0).all()
    assert (model.head.weight != 3.0).all()


def test_a_few_steps_fit_a_target():
    torch.manual_seed(0)
    batch = mol_batch()
    target = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    model = GIN(32, 1, num_layers=2, dropout=0.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(60):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(batch), target)
        loss.backward()
        optimizer.step()
        first = loss.item() if first is None else first
    assert loss.item() < 0.05 * first


def test_repr():
    assert repr(GIN(300, 1)) == "GIN(300, 1, num_layers=5, encoder='ogb', pool='mean')"
    assert repr(BondGCNConv(4)) == "BondGCNConv(4)"


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="encoder"):
        GIN(8, 1, encoder="atoms")
    with pytest.raises(ValueError, match="in_channels"):
        GIN(8, 1, encoder="linear")
    with pytest.raises(ValueError, match="pool"):
        GCN(8, 1, pool="attention")
    with pytest.raises(ValueError, match="num_layers"):
        GIN(8, 1, 0)
    with pytest.raises(ValueError, match="dropout"):
        GIN(8, 1, dropout=1.5)
    with pytest.raises(TypeError, match="data.x"):
        GIN(8, 1)(
            Batch.from_data_list(
                [
                    Data(
                        x=torch.randn(2, 9),
                        edge_index=torch.tensor([[0], [1]]),
                        edge_attr=torch.zeros(1, 3, dtype=torch.long),
                    )
                ]
            )
        )
    with pytest.raises(ValueError, match="data.edge_attr"):
        GIN(8, 1)(
            Batch.from_data_list([Data(x=torch.zeros(2, 9, dtype=torch.long), edge_index=torch.tensor([[0], [1]]))])
        )


# LRGB's budget: about 500k parameters for Peptides-func (10 tasks); the configurations of
# benchmarks/configs/lrgb.json
LRGB_CONFIGS = [
    (GCN, dict(hidden_channels=290, num_layers=5)),
    (GINE, dict(hidden_channels=150, num_layers=5)),
    (GatedGCN, dict(hidden_channels=115, num_layers=5)),
    (PLSTMGraphModel, dict(hidden_channels=112, num_layers=2, heads=4)),
]


@pytest.mark.parametrize("model_class, config", LRGB_CONFIGS)
def test_lrgb_configurations_fit_the_500k_budget(model_class, config):
    model = model_class(out_channels=10, dropout=0.0, **config)
    assert 400_000 < num_parameters(model) < 500_000
    batch = mol_batch()
    out = model(batch)
    assert out.shape == (len(SMILES), 10)
    torch.nn.functional.binary_cross_entropy_with_logits(out, torch.ones_like(out)).backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("model_class", [GINE, GatedGCN])
def test_edge_models_read_the_bond_features_and_are_residual(model_class):
    torch.manual_seed(0)
    model = model_class(16, 2, num_layers=2).eval()
    assert model.residual
    batch = mol_batch()
    changed = batch.clone()
    changed.edge_attr = (changed.edge_attr + 1) % 2  # other bond types and conjugation
    assert not torch.allclose(model(batch), model(changed))
    with pytest.raises(ValueError, match="edge_dim"):
        model_class(8, 1, encoder="linear", in_channels=4)
    data = Data(x=torch.randn(3, 4), edge_index=torch.tensor([[0, 1], [1, 2]]), edge_attr=torch.randn(2, 2))
    linear = model_class(8, 1, num_layers=2, encoder="linear", in_channels=4, edge_dim=2)
    assert linear(Batch.from_data_list([data, data])).shape == (2, 1)
