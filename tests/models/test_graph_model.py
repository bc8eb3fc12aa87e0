import io

import pytest
import torch
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader

from benchmarks.data import graphs_of
from plstm_geometric.models import PLSTMGraphModel
from plstm_geometric.testing import nci_batch
from plstm_geometric.transforms import PreparePLSTM


def molecules(count):
    return nci_batch(count).to_data_list()


def first_batch(graphs, batch_size=None):
    return next(iter(DataLoader(graphs, batch_size=batch_size or len(graphs))))


def test_blocks_alternate_directions_with_both_modes():
    model = PLSTMGraphModel(16, 2, num_layers=3, heads=2)
    assert [block.reverse for block in model.blocks] == [False, True, False]
    assert all((block.conv_p.mode, block.conv_d.mode) == ("P", "D") for block in model.blocks)
    assert str(model) == "PLSTMGraphModel(16, 2, num_layers=3, heads=2, encoder='ogb', pool='mean')"


def test_first_sweep_sets_the_blocks_directions():
    from plstm_geometric.models.graph_model import sweep_directions

    model = PLSTMGraphModel(16, 2, num_layers=3, heads=2, first_sweep="reverse")
    assert [block.reverse for block in model.blocks] == [True, False, True]
    assert sweep_directions(3, "reverse") == ("forward", "reverse")
    assert sweep_directions(1, "reverse") == ("reverse",) and sweep_directions(1) == ("forward",)
    with pytest.raises(ValueError, match="first_sweep"):
        PLSTMGraphModel(16, 2, num_layers=2, heads=2, first_sweep="both")
    # a one-block model prepared with its one direction runs on the prepared structure
    single = PLSTMGraphModel(16, 2, num_layers=1, heads=2, first_sweep="reverse")
    graphs = [PreparePLSTM(directions=sweep_directions(1, "reverse"))(graph) for graph in graphs_of("nci1024", 4)]
    batch = first_batch(graphs)
    torch.testing.assert_close(
        single(batch), single(Data(**{k: batch[k] for k in ("x", "edge_index", "edge_attr", "batch")}))
    )


@pytest.mark.parametrize("first_sweep, reached", [("forward", False), ("reverse", True)])
def test_which_pairs_two_blocks_connect(first_sweep, reached):
    # A molecule numbered depth-first: atom 0 with two branches 0-1-2 and 0-3-4, oriented by index (an
    # out-tree from atom 0). Forward then reverse connects nodes that share a descendant; the tips of
    # the two branches share none. Reverse then forward connects nodes that share an ancestor: atom 0.
    edges = torch.tensor([[0, 1], [1, 2], [0, 3], [3, 4]]).t()
    edge_index = torch.cat([edges, edges.flip(0)], 1)
    model = PLSTMGraphModel(8, 1, num_layers=2, heads=2, encoder="linear", in_channels=8, first_sweep=first_sweep)
    x = torch.randn(5, 8, requires_grad=True)
    # read out at the tip of the second branch only, through the model's own forward pass
    readout_mask = torch.tensor([False, False, False, False, True])
    out = model.eval()(Data(x=x, edge_index=edge_index, num_nodes=5, readout_mask=readout_mask))
    (gradient,) = torch.autograd.grad(out.sum(), x)
    assert bool(gradient[2].abs().sum() > 0) is reached
    assert gradient[3].abs().sum() > 0  # on the tip's own branch both orders connect


@pytest.mark.parametrize("pool", ["mean", "sum"])
def test_output_shape_and_gradients(pool):
    model = PLSTMGraphModel(16, 3, num_layers=2, heads=2, degree_encoding=True, pool=pool, dropout=0.1)
    batch = first_batch(molecules(6))
    out = model(batch)
    assert out.shape == (6, 3)
    (out * torch.randn_like(out)).sum().backward()
    for name, parameter in model.named_parameters():
        # Degrees above 4 do not occur in these molecules; their embedding rows get no gradient.
        if name == "degree_embedding.weight":
            assert parameter.grad[:4].abs().sum(1).gt(0).sum() >= 3
            continue
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


@pytest.mark.parametrize("prepared", [False, True])
def test_batch_equals_per_graph(prepared):
    graphs = molecules(40)
    if prepared:
        graphs = [PreparePLSTM()(graph) for graph in graphs]
    model = PLSTMGraphModel(16, 2, num_layers=2, heads=2).double()
    model.eval()
    batched = model(first_batch(graphs, batch_size=20))
    per_graph = torch.cat([model(first_batch([graph])) for graph in graphs[:20]])
    torch.testing.assert_close(batched, per_graph, rtol=1e-5, atol=1e-6)


def test_prepared_and_plain_data_agree():
    graphs = molecules(16)
    model = PLSTMGraphModel(16, 2, num_layers=2, heads=2)
    plain = model(first_batch(graphs))
    prepared = model(first_batch([PreparePLSTM()(graph) for graph in graphs]))
    assert torch.equal(plain, prepared)


def test_structures_computed_before_the_call():
    # what a compiled model is given to run without a graph break (tests/nn/test_compile.py)
    model = PLSTMGraphModel(16, 2, num_layers=2, heads=2).eval()
    batch = first_batch(PreparePLSTM().prepare_many(molecules(4)))
    structures = model.structures(batch)
    torch.testing.assert_close(model(batch, structures), model(batch))
    with pytest.raises(ValueError, match=r"^structures: expected model.structures\(data\)"):
        model(batch, {("P", False): structures[("P", False)]})
    other = first_batch(PreparePLSTM().prepare_many(molecules(5)[1:]))
    with pytest.raises(ValueError, match="^structure: "):
        model(batch, model.structures(other))


def test_molecules_without_bonds():
    # Single ions have no edges: their nodes only see the direct term.
    ion = Data(
        x=torch.zeros(1, 9, dtype=torch.long),
        edge_index=torch.zeros(2, 0, dtype=torch.long),
        edge_attr=torch.zeros(0, 3, dtype=torch.long),
    )
    graphs = [ion, *molecules(2), ion]
    # evaluation mode: in training the pooled batch norm makes a graph's output depend on its mini-batch
    model = PLSTMGraphModel(16, 1, num_layers=2, heads=2).eval()
    out = model(first_batch(graphs))
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[0], model(ion)[0])
    torch.testing.assert_close(model(first_batch([PreparePLSTM()(graph) for graph in graphs])), out)


def test_linear_encoders_and_single_data():
    edge_index = torch.tensor([[0, 1, 1, 2, 2, 3], [1, 0, 2, 1, 3, 2]])
    data = Data(x=torch.randn(4, 5), edge_index=edge_index, edge_attr=torch.randn(6, 2))
    model = PLSTMGraphModel(8, 1, num_layers=1, heads=2, encoder="linear", in_channels=5, edge_dim=2)
    assert model(data).shape == (1, 1)
    without_edges = PLSTMGraphModel(8, 1, num_layers=1, heads=2, encoder="linear", in_channels=5)
    assert without_edges.blocks[0].conv_p.edge_dim is None
    assert without_edges(data).shape == (1, 1)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="in_channels"):
        PLSTMGraphModel(8, 1, 1, encoder="linear")
    with pytest.raises(ValueError, match="encoder"):
        PLSTMGraphModel(8, 1, 1, encoder="gnn")
    with pytest.raises(ValueError, match="pool"):
        PLSTMGraphModel(8, 1, 1, pool="max")
    with pytest.raises(ValueError, match="num_layers"):
        PLSTMGraphModel(8, 1, 0)
    graph = molecules(1)[0]
    with pytest.raises(TypeError, match="data.x"):
        PLSTMGraphModel(8, 1, 1, heads=2)(
            Data(x=graph.x.float(), edge_index=graph.edge_index, edge_attr=graph.edge_attr)
        )
    with pytest.raises(ValueError, match="PreparePLSTM"):
        # prepared without the reverse direction, which the second block needs
        PLSTMGraphModel(8, 1, 2, heads=2)(PreparePLSTM(directions=("forward",))(graph))


def test_state_dict_round_trip():
    batch = first_batch(molecules(4))
    model = PLSTMGraphModel(16, 2, num_layers=2, heads=2, degree_encoding=True)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    restored = PLSTMGraphModel(16, 2, num_layers=2, heads=2, degree_encoding=True)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert torch.equal(restored(batch), model(batch))


def test_bf16_autocast_close_to_fp32():
    batch = first_batch(molecules(16))
    model = PLSTMGraphModel(32, 4, num_layers=2, heads=4).eval()
    reference = model(batch)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(batch)
    # Residual stream and pooling average out bf16 rounding: 3% of the output's norm.
    assert ((out.float() - reference).norm() / reference.norm()) < 3e-2
    # In training the pooled batch norm standardises over 16 graphs, which magnifies the rounding of
    # features that vary little between graphs: within 10%.
    model.train()
    reference = model(batch)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(batch)
    assert ((out.float() - reference).norm() / reference.norm()) < 1e-1


@pytest.mark.gpu
def test_cuda_matches_cpu():
    # NCI molecules from the benchmarks' tensor files: GPU machines may have neither RDKit nor OGB.
    batch = first_batch([PreparePLSTM()(graph) for graph in graphs_of("nci1024", 16)])
    model = PLSTMGraphModel(32, 2, num_layers=2, heads=4)
    reference = model(batch)
    out = model.to("cuda")(batch.to("cuda"))
    torch.testing.assert_close(out.cpu(), reference, atol=1e-4, rtol=1e-4)


def test_readout_mask_pools_only_the_marked_nodes():
    from torch_geometric.data import Batch, Data

    from plstm_geometric.models import GCN, PLSTMGraphModel

    torch.manual_seed(0)
    graphs = []
    for n in (4, 6):
        edge = torch.stack([torch.arange(n - 1), torch.arange(1, n)])
        mask = torch.zeros(n, dtype=torch.bool)
        mask[n - 1] = True
        graphs.append(
            Data(
                x=torch.randn(n, 3),
                edge_index=torch.cat([edge, edge.flip(0)], 1),
                readout_mask=mask,
            )
        )
    batch = Batch.from_data_list(graphs)
    for model in (
        PLSTMGraphModel(8, 2, 2, encoder="linear", in_channels=3),
        GCN(8, 2, 2, encoder="linear", in_channels=3, dropout=0.0),
    ):
        model.eval()
        pooled = []
        hook = model.head.register_forward_pre_hook(lambda module, inputs, pooled=pooled: pooled.append(inputs[0]))
        out = model(batch)
        hook.remove()
        if isinstance(model, PLSTMGraphModel):
            # one graph per marked node: the pooled state is the marked node's own (normalised) state
            nodes = []
            hook = model.norm.register_forward_hook(lambda module, inputs, output, nodes=nodes: nodes.append(output))
            model(batch)
            hook.remove()
            torch.testing.assert_close(pooled[0], nodes[0][batch.readout_mask])
        unmasked = Batch.from_data_list([Data(x=g.x, edge_index=g.edge_index) for g in graphs])
        assert not torch.allclose(out, model(unmasked))
        batch.readout_mask = batch.readout_mask.long()
        with pytest.raises(ValueError, match="readout_mask"):
            model(batch)
        batch.readout_mask = batch.readout_mask.bool()


def test_pool_norm_choices():
    from torch_geometric.nn import BatchNorm

    with pytest.raises(ValueError, match="pool_norm"):
        PLSTMGraphModel(8, 1, 1, encoder="linear", in_channels=3, pool_norm="layer")
    plain = PLSTMGraphModel(8, 1, 1, encoder="linear", in_channels=3, pool_norm="none")
    assert "pool_norm='none'" in repr(plain) and isinstance(plain.pooled_norm, torch.nn.Identity)
    normed = PLSTMGraphModel(8, 1, 1, encoder="linear", in_channels=3)
    assert "pool_norm" not in repr(normed) and isinstance(normed.pooled_norm, BatchNorm)
