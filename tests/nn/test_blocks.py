import io

import pytest
import torch
from torch_geometric.utils import to_undirected

from plstm_geometric.nn import PLSTMBlock, PLSTMConv
from plstm_geometric.testing import nci_batch


def ring_with_tail():
    edge_index = torch.tensor([[0, 1, 2, 3, 0, 3, 4], [1, 2, 3, 4, 4, 5, 6]])
    return to_undirected(edge_index), 7


def test_structure_of_the_block():
    block = PLSTMBlock(16, heads=4, edge_dim=3, reverse=True)
    assert isinstance(block.conv_p, PLSTMConv) and isinstance(block.conv_d, PLSTMConv)
    assert (block.conv_p.mode, block.conv_d.mode) == ("P", "D")
    assert block.conv_p.reverse and block.conv_d.reverse
    assert block.conv_p.edge_dim == 3 and block.conv_d.edge_dim == 3
    assert str(block) == "PLSTMBlock(16, heads=4, reverse=True)"


def test_residual_pre_norm_formula():
    edge_index, num_nodes = ring_with_tail()
    block = PLSTMBlock(8, heads=2, mlp_ratio=1.5)
    x = torch.randn(num_nodes, 8)
    expected = x + block.conv_p(block.norm_p(x), edge_index)
    expected = expected + block.mlp_p(block.norm_mlp_p(expected))
    expected = expected + block.conv_d(block.norm_d(expected), edge_index)
    expected = expected + block.mlp_d(block.norm_mlp_d(expected))
    torch.testing.assert_close(block(x, edge_index), expected)
    assert block.mlp_p[0].out_features == 12


@pytest.mark.parametrize("edge_dim", [None, 4])
def test_gradients_reach_every_parameter(edge_dim):
    edge_index, num_nodes = ring_with_tail()
    block = PLSTMBlock(8, heads=2, edge_dim=edge_dim)
    edge_attr = torch.randn(edge_index.size(1), 4) if edge_dim else None
    out = block(torch.randn(num_nodes, 8), edge_index, edge_attr)
    assert out.shape == (num_nodes, 8)
    (out * torch.randn_like(out)).sum().backward()
    for name, parameter in block.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_precomputed_structures_and_batching():
    batch = nci_batch(12)
    block = PLSTMBlock(8, heads=2, edge_dim=3, reverse=True)
    encode = torch.nn.Linear(9, 8)
    x, edge_attr = encode(batch.x.float()), batch.edge_attr.float()
    structure_p = block.conv_p.structure(batch.edge_index, batch.num_nodes)
    structure_d = block.conv_d.structure(batch.edge_index, batch.num_nodes)
    out = block(x, batch.edge_index, edge_attr)
    assert torch.equal(block(x, batch.edge_index, edge_attr, structure_p=structure_p, structure_d=structure_d), out)
    per_graph = []
    for graph in batch.to_data_list():
        per_graph.append(block(encode(graph.x.float()), graph.edge_index, graph.edge_attr.float()))
    torch.testing.assert_close(out, torch.cat(per_graph), rtol=1e-4, atol=1e-5)


def test_state_dict_round_trip_and_reset():
    edge_index, num_nodes = ring_with_tail()
    block = PLSTMBlock(8, heads=2)
    x = torch.randn(num_nodes, 8)
    buffer = io.BytesIO()
    torch.save(block.state_dict(), buffer)
    buffer.seek(0)
    restored = PLSTMBlock(8, heads=2)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert torch.equal(restored(x, edge_index), block(x, edge_index))
    with torch.no_grad():
        for parameter in block.parameters():
            parameter.add_(1.0)
    block.reset_parameters()
    assert torch.all(block.conv_d.lin_gate.bias.view(4, 2)[3] == -6)
    assert torch.all(block.norm_p.weight == 1)
