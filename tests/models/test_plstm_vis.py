import pytest
import torch

from plstm_geometric.models import PLSTMVis
from plstm_geometric.nn import PLSTM2D


def small_model(**kwargs):
    options = dict(dim=12, heads=3, depth=2)
    options.update(kwargs)
    return PLSTMVis(192, 32, 3, 5, **options)


def test_same_weights_run_at_192_and_384_pixels():
    model = small_model().eval()
    for size, grid in ((192, 6), (384, 12)):
        images = torch.randn(2, 3, size, size)
        logits = model(images)
        assert logits.shape == (2, 5) and torch.isfinite(logits).all()
        assert model.patch_position_embedding((grid, grid)).shape == (1, 12, grid, grid)
    # Non-square inputs work too (the grid is X x Y).
    assert model(torch.randn(1, 3, 192, 384)).shape == (1, 5)


def test_gradients_reach_every_parameter():
    model = small_model()
    with torch.no_grad():
        for block in model.blocks:  # input-dependent gates, so their weights get gradients too
            block.plstm.gates_projection.weight.normal_(0, 0.5)
            block.plstm.direct.weight.normal_(0, 0.5)
    images = torch.randn(2, 3, 192, 192, requires_grad=True)
    model(images).pow(2).sum().backward()
    assert images.grad.abs().sum() > 0
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_blocks_alternate_p_and_d_and_pooling_reads_the_corners():
    model = small_model(depth=3, pos_embedding=None).eval()
    assert [block.plstm.mode for block in model.blocks] == ["P", "D", "P"]
    assert model.pos_embedding is None and model.head.in_features == 4 * 12
    images = torch.randn(1, 3, 192, 192)
    features = {}
    model.norm.register_forward_hook(lambda module, inputs, output: features.update(tokens=output))
    logits = model(images)
    tokens = features["tokens"]
    corners = torch.cat([tokens[:, 0, 0], tokens[:, -1, 0], tokens[:, 0, -1], tokens[:, -1, -1]], dim=-1)
    torch.testing.assert_close(logits, model.head(corners))


def test_tiny_configuration():
    model = PLSTMVis.tiny(32, 16, 3, 10)
    assert (model.dim, model.heads, model.depth) == (192, 3, 6)
    assert isinstance(model.blocks[0].plstm, PLSTM2D) and model.blocks[0].plstm.heads == 3
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    assert PLSTMVis.from_config("tiny", 32, 16, 3, 10, depth=2).depth == 2
    assert repr(model).startswith("PLSTMVis(image_size=(32, 32), patch_size=16")


def test_bad_arguments_raise_with_their_name():
    with pytest.raises(ValueError, match="image_size"):
        PLSTMVis(100, 16, 3, 10)
    with pytest.raises(ValueError, match="pos_embedding"):
        PLSTMVis(32, 16, 3, 10, dim=12, pos_embedding="sincos")
    with pytest.raises(ValueError, match="name"):
        PLSTMVis.from_config("huge", 32, 16, 3, 10)
    model = PLSTMVis(32, 16, 3, 10, dim=12, depth=1)
    with pytest.raises(ValueError, match="images"):
        model(torch.randn(1, 1, 32, 32))
    with pytest.raises(ValueError, match="images"):
        model(torch.randn(1, 3, 40, 32))
