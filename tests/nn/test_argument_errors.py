"""Clear errors at the layer boundary instead of deep ones."""

import pytest
import torch
from torch_geometric.data import Data

from plstm_geometric.nn import GILRLSTM, PLSTMConv
from plstm_geometric.nn.encoders import ATOM_FEATURE_SIZES, AtomEncoder, BondEncoder
from plstm_geometric.transforms import PreparePLSTM


@pytest.mark.parametrize(
    "kwargs,name",
    [
        (dict(heads=0), "heads"),
        (dict(edge_dim=0), "edge_dim"),
        (dict(heads=-1), "heads"),
        (dict(edge_dim=1.5), "edge_dim"),
    ],
)
def test_plstm_conv_constructor_names_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=f"^{name}: expected a positive int"):
        PLSTMConv(4, 4, **kwargs)


def test_plstm_conv_refuses_x_of_another_dtype():
    conv = PLSTMConv(4, 4, heads=2)
    edge_index = torch.tensor([[0, 1], [1, 2]])
    with pytest.raises(TypeError, match="^x: expected dtype torch.float32"):
        conv(torch.randn(3, 4, dtype=torch.float64), edge_index)
    assert conv(torch.randn(3, 4), edge_index).shape == (3, 4)


def test_plstm_conv_refuses_a_structure_of_another_graph():
    conv = PLSTMConv(4, 4, heads=2, orientation="dag")
    a = torch.tensor([[0, 1, 2], [1, 2, 3]])
    b = torch.tensor([[0, 2, 1], [1, 3, 3]])
    structure = conv.structure(a, 4)
    x = torch.randn(4, 4)
    torch.testing.assert_close(conv(x, a, structure=structure), conv(x, a))
    with pytest.raises(ValueError, match="^structure: .*another graph"):
        conv(x, b, structure=structure)


def test_gilrlstm_zero_length_sequence_returns_the_initial_state():
    module = GILRLSTM(2, 3)
    out, (gilr_state, cell_state) = module(torch.randn(2, 0, 2), return_state=True)
    assert out.shape == (2, 0, 3)
    assert torch.equal(gilr_state, torch.zeros(2, 3)) and torch.equal(cell_state, torch.zeros(2, 3))
    given = (torch.randn(2, 3), torch.randn(2, 3))
    _, state = module(torch.randn(2, 0, 2), initial_state=given, return_state=True)
    assert torch.equal(state[0], given[0]) and torch.equal(state[1], given[1])


def test_encoders_refuse_out_of_vocabulary_and_wrong_columns():
    atoms, bonds = AtomEncoder(8), BondEncoder(8)
    good = torch.zeros(3, 9, dtype=torch.long)
    assert atoms(good).shape == (3, 8)
    bad = good.clone()
    bad[1, 2] = ATOM_FEATURE_SIZES[2]
    with pytest.raises(ValueError, match=r"^x: expected column 2 in \[0, 11\], got values in \[0, 12\]"):
        atoms(bad)
    with pytest.raises(ValueError, match=r"^edge_attr: expected column 0 in \[0, 4\]"):
        bonds(torch.tensor([[-1, 0, 0]]))
    with pytest.raises(ValueError, match=r"^edge_attr: expected shape \[N, F\] with 1 <= F <= 3"):
        bonds(torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(TypeError, match="^edge_attr: expected an integer tensor"):
        bonds(torch.zeros(2, 3))


def test_prepare_names_a_missing_order_attribute():
    data = Data(x=torch.randn(3, 2), edge_index=torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]]))
    with pytest.raises(ValueError, match="^order: .*'rank'"):
        PreparePLSTM(order="rank")(data)
