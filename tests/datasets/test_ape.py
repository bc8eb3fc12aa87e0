import math

import numpy as np
import pytest
import torch

from plstm_geometric.datasets import APEDataset
from plstm_geometric.datasets.ape import ape_geometry, render_ape

NUM_GEOMETRIES = 1000


def ray_misses_by(geometry):
    """Independent ray/disc test: the closest approach of the ray {a + t u, t >= 0} to the disc centre."""
    ax, ay = geometry["arrow_x"], geometry["arrow_y"]
    cx, cy = geometry["disc_x"], geometry["disc_y"]
    ux, uy = math.cos(geometry["direction"]), math.sin(geometry["direction"])
    along = (cx - ax) * ux + (cy - ay) * uy
    if along <= 0:  # the disc lies behind the arrow centre: the closest ray point is the centre itself
        return math.hypot(cx - ax, cy - ay)
    return abs((cx - ax) * uy - (cy - ay) * ux)


@pytest.fixture(scope="module", params=[192, 384])
def geometries(request):
    size = request.param
    return size, [ape_geometry(3, index, size) for index in range(NUM_GEOMETRIES)]


def test_label_agrees_with_ray_disc_intersection(geometries):
    _, samples = geometries
    for geometry in samples:
        closest = ray_misses_by(geometry)
        if geometry["label"] == 1:
            assert closest < geometry["radius"] / 1.2, geometry
        else:
            assert closest > geometry["radius"] * 1.2, geometry


def test_classes_balanced_and_directions_not_trivial(geometries):
    _, samples = geometries
    labels = np.array([g["label"] for g in samples])
    assert labels.sum() == NUM_GEOMETRIES // 2
    # Misses must come from all around, not only from just beside the disc.
    misses = [g for g in samples if g["label"] == 0]
    behind = sum(
        (g["disc_x"] - g["arrow_x"]) * math.cos(g["direction"])
        + (g["disc_y"] - g["arrow_y"]) * math.sin(g["direction"])
        < 0
        for g in misses
    )
    assert 0.3 * len(misses) < behind < 0.8 * len(misses)


def test_constraints(geometries):
    size, samples = geometries
    for g in samples:
        for key in ("arrow_x", "arrow_y", "disc_x", "disc_y"):
            assert 30 <= g[key] <= size - 30, (key, g)
        assert abs(g["arrow_x"] - g["disc_x"]) >= 2 * g["radius"] - 1e-9
        assert abs(g["arrow_y"] - g["disc_y"]) >= 2 * g["radius"] - 1e-9
        assert 15 <= g["radius"] <= 30
        assert 15 <= g["arrow_length"] <= 30 and g["arrow_width"] in (2, 3)
    # Positions spread over the whole inner square, so larger images hold longer-range pairs.
    distances = [math.hypot(g["arrow_x"] - g["disc_x"], g["arrow_y"] - g["disc_y"]) for g in samples]
    assert max(distances) > 0.8 * math.sqrt(2) * (size - 60)


def test_deterministic_per_seed_and_index():
    assert ape_geometry(5, 17, 192) == ape_geometry(5, 17, 192)
    assert ape_geometry(5, 17, 192) != ape_geometry(6, 17, 192)
    assert ape_geometry(5, 17, 192) != ape_geometry(5, 19, 192)
    first, second = APEDataset(8, seed=5), APEDataset(8, seed=5)
    for index in (7, 2):  # order of access must not matter
        assert torch.equal(first[index][0], second[index][0])
        assert first[index][1] == second[index][1]


@pytest.mark.parametrize("size", [192, 384])
def test_rendered_pixels(size):
    dataset = APEDataset(6, image_size=size, seed=1, return_geometry=True)
    assert len(dataset) == 6
    for index in range(len(dataset)):
        image, label, g = dataset[index]
        assert image.shape == (3, size, size) and image.dtype == torch.float32 and image.is_contiguous()
        assert label.dtype == torch.long and label.item() == index % 2 == g["label"]
        assert image.min() == 0.0 and image.max() == 1.0
        assert torch.equal(image[0], image[1]) and torch.equal(image[0], image[2])
        gray = image[0]
        # Disc centre and points just inside the rim are black, points just outside (and not on the arrow,
        # which is at least 0.8 r away) are white.
        for angle in np.linspace(0, 2 * math.pi, 8, endpoint=False):
            for scale, value in ((0.0, 0.0), (0.9, 0.0), (1.1, 1.0)):
                x = g["disc_x"] + scale * g["radius"] * math.cos(angle)
                y = g["disc_y"] + scale * g["radius"] * math.sin(angle)
                assert gray[round(y), round(x)] == value, (index, angle, scale)
        # The corners lie outside the border that holds both objects.
        assert gray[0, 0] == gray[0, -1] == gray[-1, 0] == gray[-1, -1] == 1.0
        # The arrow is drawn: black pixels next to its centre (a 2 px stroke straddles the centre line).
        row, column = round(g["arrow_y"]), round(g["arrow_x"])
        assert gray[row - 1 : row + 2, column - 1 : column + 2].min() == 0.0
        # Black area: the disc plus a thin arrow.
        disc_area = math.pi * g["radius"] ** 2
        black = (gray == 0).sum().item()
        assert disc_area * 0.9 < black < disc_area * 1.1 + 4 * g["arrow_length"] * g["arrow_width"]
    assert torch.equal(render_ape(g, size), image)


def test_bad_arguments():
    with pytest.raises(ValueError, match="image_size"):
        APEDataset(4, image_size=100)
    with pytest.raises(TypeError, match="image_size"):
        ape_geometry(0, 0, 192.0)
    with pytest.raises(ValueError, match="index"):
        ape_geometry(0, -1, 192)
    with pytest.raises(ValueError, match="num_samples"):
        APEDataset(-1)
    with pytest.raises(IndexError):
        APEDataset(4)[4]
