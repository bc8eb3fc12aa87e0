import copy

import pytest
import torch

from plstm_geometric.functional.grid import GRID_ORIENTATIONS, flip_grid
from plstm_geometric.nn import PLSTM2D


def randomize_gates(layer, scale=0.5):
    """Input-dependent gates (the default init has zero gate weights, which would hide orientation bugs)."""
    with torch.no_grad():
        layer.gates_projection.weight.normal_(0, scale)
        layer.direct.weight.normal_(0, scale)
    return layer


@pytest.mark.parametrize("orientations", [1, 2, 4])
@pytest.mark.parametrize("mode", ["P", "D"])
def test_shapes_and_gradients_reach_every_parameter(mode, orientations):
    layer = randomize_gates(PLSTM2D(12, heads=3, mode=mode, orientations=orientations, qk_channels=5))
    x = torch.randn(2, 5, 4, 12, requires_grad=True)
    out = layer(x)
    assert out.shape == x.shape
    out.pow(2).sum().backward()
    assert x.grad.abs().sum() > 0
    for name, parameter in layer.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_repr_and_reset_parameters():
    layer = PLSTM2D(8, heads=2, mode="D", orientations=2)
    assert repr(layer) == "PLSTM2D(8, heads=2, mode='D', orientations=2)"
    state = copy.deepcopy(layer.state_dict())
    randomize_gates(layer)
    layer.reset_parameters()
    torch.testing.assert_close(layer.gates_projection.weight, state["gates_projection.weight"])
    torch.testing.assert_close(layer.gates_projection.bias, state["gates_projection.bias"])


@pytest.mark.parametrize("flip_x,flip_y", GRID_ORIENTATIONS[1:])
@pytest.mark.parametrize("mode", ["P", "D"])
def test_flipped_image_gives_the_flipped_output_of_the_flipped_sweeps(mode, flip_x, flip_y):
    layer = randomize_gates(PLSTM2D(6, heads=2, mode=mode, orientations=4)).double()
    # Sweep o of the flipped image is sweep o' = o composed with the flip of the original image.
    flipped_layer = copy.deepcopy(layer)
    permutation = [GRID_ORIENTATIONS.index((fx != flip_x, fy != flip_y)) for fx, fy in GRID_ORIENTATIONS]
    with torch.no_grad():
        for parameter in (flipped_layer.gates_projection.weight, flipped_layer.gates_projection.bias):
            parameter.copy_(parameter.unflatten(0, (4, -1))[permutation].flatten(0, 1))
    x = torch.randn(1, 4, 5, 6, dtype=torch.float64)
    out = layer(flip_grid(x, flip_x, flip_y))
    # The multi-head norm computes in float32, hence the tolerance.
    torch.testing.assert_close(out, flip_grid(flipped_layer(x), flip_x, flip_y), atol=1e-10, rtol=1e-5)
    # Without the permutation the sweeps do not line up: the check can fail.
    mismatch = out - flip_grid(layer(x), flip_x, flip_y)
    assert mismatch.abs().max() > 0.01 * out.abs().max()


@pytest.mark.parametrize("mode", ["P", "D"])
def test_finite_on_a_64x64_grid_with_open_gates(mode):
    layer = PLSTM2D(4, heads=1, mode=mode, orientations=1)
    with torch.no_grad():
        # Sources, marks and transitions fully open: the longest sweeps the constraints must tame.
        layer.gates_projection.bias.fill_(20.0)
    x = torch.randn(1, 64, 64, 4, requires_grad=True)
    out = layer(x)
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in layer.parameters())


@pytest.mark.parametrize("mode", ["P", "D"])
def test_transition_constraints_hold_for_extreme_pre_activations(mode):
    layer = PLSTM2D(6, heads=3, mode=mode, orientations=4)
    with torch.no_grad():
        layer.gates_projection.weight.normal_(0, 1e3)
        layer.gates_projection.bias.normal_(0, 1e3)
    x = torch.randn(2, 3, 5, 6) * 10
    gates = layer.gates(x)._asdict()
    assert all(gate.shape == (4, 2, 3, 5, 3) and torch.isfinite(gate).all() for gate in gates.values())
    saturated = (gates["transition_rr"] > 1 - 1e-6).float().mean()
    assert 0 < saturated < 1  # the pre-activations really reach both flat ends
    if mode == "P":
        for name in ("transition_rr", "transition_dd", "transition_rd", "transition_dr", "source_r", "source_d"):
            assert (gates[name] >= 0).all(), name
        # Columns: what arrives on an r-edge (or a d-edge) leaves on r and d with total weight <= 1.
        eps = torch.finfo(torch.float32).eps
        assert (gates["transition_rr"] + gates["transition_rd"] <= 1 + 2 * eps).all()
        assert (gates["transition_dr"] + gates["transition_dd"] <= 1 + 2 * eps).all()
        assert (gates["source_r"] + gates["source_d"] <= 1 + 2 * eps).all()
    else:
        assert (gates["transition_dr"] == 0).all()  # multitree: a d-edge never turns into an r-edge
        for name in ("transition_rr", "transition_dd", "transition_rd"):
            assert (gates[name].abs() <= 1).all(), name


def test_init_follows_the_paper_biases():
    layer = PLSTM2D(6, heads=3, mode="P")
    gates = layer.gates(torch.randn(1, 2, 2, 6))._asdict()
    torch.testing.assert_close(gates["mark_r"], torch.full_like(gates["mark_r"], torch.sigmoid(torch.tensor(-4.0))))
    alpha = gates["source_r"] / (gates["source_r"] + gates["source_d"])
    torch.testing.assert_close(alpha[0, 0, 0, 0], torch.sigmoid(torch.linspace(-2, 2, 3)))


def test_backends_agree():
    layer = randomize_gates(PLSTM2D(6, heads=2, mode="P", orientations=2, backend="wavefront"))
    x = torch.randn(2, 4, 6, 6)
    expected = layer(x)
    layer.backend = "dag"
    torch.testing.assert_close(layer(x), expected, atol=1e-9, rtol=1e-4)


def test_bad_arguments_raise_with_their_name():
    with pytest.raises(ValueError, match="dim"):
        PLSTM2D(10, heads=3)
    with pytest.raises(ValueError, match="mode"):
        PLSTM2D(6, heads=3, mode="Q")
    with pytest.raises(ValueError, match="orientations"):
        PLSTM2D(6, heads=3, orientations=3)
    with pytest.raises(ValueError, match="qk_channels"):
        PLSTM2D(6, heads=3, qk_channels=0)
    with pytest.raises(ValueError, match="x"):
        PLSTM2D(6, heads=3)(torch.randn(2, 4, 6))
    with pytest.raises(TypeError, match="x"):
        PLSTM2D(6, heads=3)([1.0])
