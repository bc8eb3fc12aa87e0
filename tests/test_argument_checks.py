"""Arguments refused at the public boundary, with the argument named (TypeError for a type or dtype,
ValueError for a value), where they used to be accepted or to fail deep inside torch."""

import io

import numpy as np
import pytest
import torch
from torch_geometric.data import Data

from plstm_geometric.graph import dagify, reverse_dag
from plstm_geometric.nn import GILR, GILRLSTM, PLSTM2D, MultiHeadRMSNorm, PLSTMBlock, PLSTMConv
from plstm_geometric.nn.encoders import AtomEncoder, BondEncoder
from plstm_geometric.transforms import PLSTMData, PreparePLSTM

EDGES = torch.tensor([[0, 1], [1, 0]])


@pytest.mark.parametrize(
    "make, error, name",
    [
        (lambda: dagify(EDGES, True), TypeError, "num_nodes"),
        (lambda: dagify(EDGES, 2.0), TypeError, "num_nodes"),
        (lambda: reverse_dag(EDGES.float()), TypeError, "edge_index"),
        (lambda: PLSTM2D(8, 2, backend="bad"), ValueError, "backend"),
        (lambda: PLSTM2D(8, 2, recompute_states="no"), TypeError, "recompute_states"),
        (lambda: GILR(4, 0), ValueError, "hidden_channels"),
        (lambda: GILR(0, 4), ValueError, "in_channels"),
        (lambda: GILRLSTM(4, 0), ValueError, "hidden_channels"),
        (lambda: MultiHeadRMSNorm(0, 4), ValueError, "heads"),
        (lambda: MultiHeadRMSNorm(2, 4, eps=0.0), ValueError, "eps"),
        (lambda: PLSTMBlock(8, mlp_ratio=-1), ValueError, "mlp_ratio"),
        (lambda: PLSTMBlock(8, dropout=1.5), ValueError, "dropout"),
    ],
)
def test_constructors_refuse_bad_arguments(make, error, name):
    with pytest.raises(error, match=name):
        make()


def test_plstm_conv_refuses_edge_attr_of_another_type_or_dtype():
    conv = PLSTMConv(4, 4, heads=1, edge_dim=2)
    x = torch.randn(2, 4)
    with pytest.raises(TypeError, match="edge_attr: expected dtype torch.float32"):
        conv(x, EDGES, torch.randn(2, 2, dtype=torch.float64))
    with pytest.raises(TypeError, match="edge_attr: expected a torch.Tensor, got ndarray"):
        conv(x, EDGES, np.ones((2, 2), dtype=np.float32))


@pytest.mark.parametrize("dtype", [torch.float64, torch.long])
def test_plstm2d_refuses_input_of_another_dtype(dtype):
    with pytest.raises(TypeError, match="x: expected dtype torch.float32"):
        PLSTM2D(8, 2)(torch.ones(1, 3, 3, 8, dtype=dtype))


def test_encoders_name_their_own_input():
    with pytest.raises(ValueError, match="^edge_attr: expected column 0"):
        BondEncoder(8)(torch.tensor([[99, 0, 0]]))
    with pytest.raises(ValueError, match="^x: expected column 0"):
        AtomEncoder(8)(torch.tensor([[999] + [0] * 8]))


def test_plstm_data_loads_with_weights_only():
    data = PreparePLSTM()(Data(x=torch.randn(3, 2), edge_index=torch.tensor([[0, 1], [1, 2]])))
    buffer = io.BytesIO()
    torch.save(data, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    assert isinstance(loaded, PLSTMData)
    assert set(loaded.keys()) == set(data.keys())
    assert all(torch.equal(loaded[key], data[key]) for key in data.keys())
