import math

import pytest
import torch

from benchmarks.stability import measure
from plstm_geometric.nn import PLSTMConv
from plstm_geometric.testing import chain_dag, grid_dag, random_dag

PUSHED = 10.0


def pushed_conv(mode):
    """A layer whose source gates are open and whose transition pre-activations are +10 everywhere."""
    conv = PLSTMConv(8, 8, heads=2, mode=mode)
    with torch.no_grad():
        bias = conv.lin_gate.bias.view(4, 2)
        bias[0].fill_(PUSHED)
        bias[2].fill_(PUSHED)
    return conv


@pytest.mark.parametrize("mode", ["P", "D"])
def test_constrained_modes_stay_finite_on_a_grid(mode):
    edge_index = grid_dag(40, 40)
    conv = pushed_conv(mode)
    x = torch.randn(40 * 40, 8, requires_grad=True)
    out = conv(x, edge_index)
    assert torch.isfinite(out).all()
    (out * torch.randn_like(out)).sum().backward()
    assert torch.isfinite(x.grad).all()
    for name, parameter in conv.named_parameters():
        assert torch.isfinite(parameter.grad).all(), name


def test_unconstrained_mode_overflows_on_a_grid():
    # C(78, 39) ~ 1e22 paths of 78 transitions of 10 reach the far corner: far beyond float32.
    out = pushed_conv("unconstrained")(torch.randn(40 * 40, 8), grid_dag(40, 40))
    assert not torch.isfinite(out).all()


@pytest.mark.parametrize(
    "name, edge_index, num_nodes",
    [
        ("chain", chain_dag(300), 300),
        ("grid", grid_dag(20, 20), 400),
        ("random", random_dag(600, window=50), 600),
    ],
)
@pytest.mark.parametrize("sign", ["+10", "+-10"])
def test_state_norms_respect_the_bounds(name, edge_index, num_nodes, sign):
    for mode in ("P", "D"):
        row = measure(edge_index, num_nodes, mode, sign)
        assert row["output_finite"] and row["gradients_finite"], (name, mode)
        # measured <= triangle-inequality bound <= the paper's bound (sum of source contributions)
        assert row["max_state_norm"] <= row["triangle_bound"] * (1 + 1e-5), (name, mode)
        assert row["triangle_bound"] <= row["paper_bound"] * (1 + 1e-5), (name, mode)
    unconstrained = measure(edge_index, num_nodes, "unconstrained", sign)
    assert unconstrained["max_state_norm"] == math.inf or unconstrained["max_state_norm"] > 1e30, name


def test_p_mode_chain_decays_geometrically():
    # On a chain every edge has one successor: T = 10 / (1 + 10), so mu_e = sum_i T^i < 11.
    row = measure(chain_dag(500), 500, "P", "+10")
    assert 10.9 < row["triangle_bound"] < 11.0
