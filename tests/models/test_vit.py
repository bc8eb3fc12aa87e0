import pytest
import torch
import torch.nn.functional as F

from plstm_geometric.models import ViT


def small_vit(**kwargs):
    options = dict(image_size=32, patch_size=8, in_channels=3, num_classes=5, dim=32, heads=2, depth=2)
    options.update(kwargs)
    return ViT(**options)


@pytest.mark.parametrize("pool", ["cls", "mean"])
@pytest.mark.parametrize("pos_embedding", ["learned", "sincos"])
def test_shapes_at_training_and_larger_size(pool, pos_embedding):
    model = small_vit(pool=pool, pos_embedding=pos_embedding)
    for size in [(32, 32), (64, 64), (48, 64)]:
        images = torch.randn(2, 3, *size, requires_grad=True)
        out = model(images)
        assert out.shape == (2, 5)
        out.sum().backward()
        assert images.grad.abs().sum() > 0
    assert (model.cls_token is not None) == (pool == "cls")


def test_learned_position_embedding_interpolation():
    model = small_vit()
    assert model.patch_position_embedding((4, 4)) is model.pos_embedding
    resized = model.patch_position_embedding((8, 8))
    expected = F.interpolate(model.pos_embedding, size=(8, 8), mode="bicubic", align_corners=False)
    assert resized.shape == (1, 32, 8, 8)
    torch.testing.assert_close(resized, expected)
    # A constant table stays constant; the resize is a smooth upsampling, not a tiling or a crop.
    with torch.no_grad():
        model.pos_embedding.fill_(0.25)
    torch.testing.assert_close(model.patch_position_embedding((8, 8)), torch.full((1, 32, 8, 8), 0.25))
    # Gradients reach the learned table through the interpolation.
    model(torch.randn(1, 3, 64, 64)).sum().backward()
    assert model.pos_embedding.grad.abs().sum() > 0


def test_position_embedding_makes_model_position_aware():
    model = small_vit(pool="mean").eval()
    images = torch.randn(1, 3, 32, 32)
    shifted = images.roll(8, dims=3)  # permutes the patches
    assert not torch.allclose(model(images), model(shifted))
    with torch.no_grad():
        model.pos_embedding.zero_()
    # Without positions, mean pooling over patches is permutation invariant.
    torch.testing.assert_close(model(images), model(shifted), atol=1e-5, rtol=1e-5)


def test_reset_parameters_and_repr():
    torch.manual_seed(1)
    first = small_vit()
    torch.manual_seed(1)
    second = small_vit()
    for a, b in zip(first.parameters(), second.parameters()):
        assert torch.equal(a, b)
    before = [p.detach().clone() for p in first.parameters()]
    first.reset_parameters()
    assert not all(torch.equal(a, b) for a, b in zip(before, first.parameters()))
    assert first.blocks[0].norm_first
    assert repr(first).startswith("ViT(image_size=(32, 32), patch_size=8")


def test_learns_a_tiny_task():
    # The class is the quadrant holding a bright patch: needs positions and attention to solve.
    torch.manual_seed(0)
    images = torch.zeros(16, 3, 32, 32)
    labels = torch.arange(16) % 4
    for i, label in enumerate(labels.tolist()):
        row, column = divmod(label, 2)
        images[i, :, row * 16 + 4 : row * 16 + 12, column * 16 + 4 : column * 16 + 12] = 1.0
    images += 0.1 * torch.randn_like(images)
    model = small_vit(num_classes=4)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(60):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
    assert (model(images).argmax(dim=1) == labels).float().mean() == 1.0


def test_bad_arguments():
    with pytest.raises(ValueError, match="image_size"):
        small_vit(image_size=30)
    with pytest.raises(ValueError, match="dim"):
        small_vit(dim=33, heads=2)
    with pytest.raises(ValueError, match="pos_embedding"):
        small_vit(pos_embedding="rope")
    with pytest.raises(ValueError, match="pool"):
        small_vit(pool="max")
    model = small_vit()
    with pytest.raises(ValueError, match="images"):
        model(torch.randn(1, 1, 32, 32))
    with pytest.raises(ValueError, match="images"):
        model(torch.randn(1, 3, 36, 32))
