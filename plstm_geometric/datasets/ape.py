r"""Arrow-pointing extrapolation (APE), the synthetic vision task of the pLSTM paper (arXiv 2506.11997).

Each image is white with a black arrow and a filled black disc. The label says whether the arrow points at
the disc:

.. math::
    y = 1 \iff \exists\, t > 0:\ \lVert a + t\,u(\varphi) - c \rVert < r / f, \qquad
    y = 0 \iff \forall\, t > 0:\ \lVert a + t\,u(\varphi) - c \rVert > f\,r,

with arrow centre :math:`a`, direction :math:`u(\varphi) = (\cos\varphi, \sin\varphi)`, disc centre :math:`c`,
radius :math:`r` and tolerance factor :math:`f = 1.2`. Rays passing between the shrunk and the enlarged disc
are ambiguous and never generated, so the label is decidable from the picture despite pixelation.

Object sizes are fixed in pixels while the positions spread over the whole image, so an image of twice the
side shows the same objects up to twice as far apart: a model trained at 192 px and tested at 384 px has to
extrapolate to longer-range interactions. Coordinates are ``(x, y)`` = (column, row) in pixels, PIL's
convention: pixel ``[i, j]`` is centred on ``(j, i)``.
"""

import argparse
import math
import pathlib

import numpy as np
import torch
from PIL import Image, ImageDraw

BORDER = 30
MIN_RADIUS, MAX_RADIUS = 15.0, 30.0
MIN_ARROW_LENGTH, MAX_ARROW_LENGTH = 15, 30
MIN_ARROW_WIDTH, MAX_ARROW_WIDTH = 2, 3
# Centres are at least SEPARATION * r apart along each axis, so the arrow never touches the disc.
SEPARATION = 2.0
TOLERANCE = 1.2
HEAD_ANGLE = 0.5
HEAD_LENGTH_RATIO = 1.0 / 2.5
MIN_IMAGE_SIZE = 2 * BORDER + int(SEPARATION * MAX_RADIUS)


def _check_image_size(image_size) -> int:
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)):
        raise TypeError(f"image_size: expected an int, got {type(image_size).__name__}")
    if image_size < MIN_IMAGE_SIZE:
        raise ValueError(
            f"image_size: expected at least {MIN_IMAGE_SIZE} px (a {BORDER} px border on each side plus room for "
            f"two centres {SEPARATION:g} * {MAX_RADIUS:g} px apart), got {image_size}"
        )
    return int(image_size)


def _separated_pair(rng: np.random.Generator, low: float, high: float, gap: float) -> tuple[float, float]:
    """Uniform sample of (p, q) in [low, high]^2 with |p - q| >= gap, drawn directly (no rejection loop).

    The admissible set is two congruent right triangles; (u, v) uniform in the unit square folded onto the
    triangle u + v <= 1 is uniform there, and a fair coin picks the triangle.
    """
    legs = high - low - gap
    u, v = rng.random(2)
    if u + v > 1.0:
        u, v = 1.0 - u, 1.0 - v
    p, q = low + legs * u, high - legs * v
    if rng.random() < 0.5:
        p, q = q, p
    return float(p), float(q)


def ape_geometry(seed: int, index: int, image_size: int = 192) -> dict:
    r"""The geometry of APE sample ``index`` of the stream ``seed``; pure and deterministic.

    The label is ``index % 2`` (exactly balanced classes). Sizes and both centres are drawn independently
    of the label, so neither the distance nor the disc size gives the label away; only the direction is
    drawn per label, uniformly over the directions whose ray hits the disc of radius :math:`r/1.2`
    (label 1) or misses the disc of radius :math:`1.2\,r` (label 0). That is exactly rejection sampling of
    a uniform direction until it is unambiguous and matches the label, without the loop: seen from the
    arrow centre at distance :math:`d`, a disc of radius :math:`\rho < d` covers the directions within
    :math:`\arcsin(\rho / d)` of the direction to its centre.

    Args:
        seed (int): stream seed; the generator is ``numpy.random.default_rng([seed, index])``.
        index (int): sample index, ``>= 0``.
        image_size (int): side of the square image in pixels.

    Returns:
        dict with ``arrow_x``, ``arrow_y`` (arrow centre), ``direction`` (radians, in :math:`[-\pi, \pi)`,
        image axes: x right, y down), ``arrow_length``, ``arrow_width`` (int px), ``disc_x``, ``disc_y``,
        ``radius`` and ``label`` (int).
    """
    image_size = _check_image_size(image_size)
    for name, value in (("seed", seed), ("index", index)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
        if value < 0:
            raise ValueError(f"{name}: expected a non-negative int, got {value}")
    rng = np.random.default_rng([int(seed), int(index)])
    label = int(index) % 2

    arrow_length = int(rng.integers(MIN_ARROW_LENGTH, MAX_ARROW_LENGTH + 1))
    arrow_width = int(rng.integers(MIN_ARROW_WIDTH, MAX_ARROW_WIDTH + 1))
    radius = float(rng.uniform(MIN_RADIUS, MAX_RADIUS))
    low, high = float(BORDER), float(image_size - BORDER)
    arrow_x, disc_x = _separated_pair(rng, low, high, SEPARATION * radius)
    arrow_y, disc_y = _separated_pair(rng, low, high, SEPARATION * radius)

    # The separation puts the arrow centre at least 2 * sqrt(2) * r from the disc centre, well outside
    # the enlarged disc, so both arcsines are defined.
    distance = math.hypot(disc_x - arrow_x, disc_y - arrow_y)
    towards_disc = math.atan2(disc_y - arrow_y, disc_x - arrow_x)
    if label == 1:
        half_width = math.asin(radius / TOLERANCE / distance)
        offset = half_width * (2.0 * rng.random() - 1.0)
    else:
        half_width = math.asin(radius * TOLERANCE / distance)
        offset = half_width + (2.0 * math.pi - 2.0 * half_width) * rng.random()
    direction = (towards_disc + offset + math.pi) % (2.0 * math.pi) - math.pi

    return dict(
        arrow_x=arrow_x,
        arrow_y=arrow_y,
        direction=direction,
        arrow_length=arrow_length,
        arrow_width=arrow_width,
        disc_x=disc_x,
        disc_y=disc_y,
        radius=radius,
        label=label,
    )


def arrow_segments(geometry: dict) -> list[tuple[float, float, float, float]]:
    """The three strokes of the arrow as ``(x0, y0, x1, y1)``: the shaft, centred on the arrow centre,
    and two head strokes of length ``L / 2.5`` leaving the tip at +/-0.5 rad from the reversed direction."""
    cos_d, sin_d = math.cos(geometry["direction"]), math.sin(geometry["direction"])
    half = geometry["arrow_length"] / 2.0
    tail = (geometry["arrow_x"] - half * cos_d, geometry["arrow_y"] - half * sin_d)
    tip = (geometry["arrow_x"] + half * cos_d, geometry["arrow_y"] + half * sin_d)
    head = geometry["arrow_length"] * HEAD_LENGTH_RATIO
    strokes = [(*tail, *tip)]
    for turn in (-HEAD_ANGLE, HEAD_ANGLE):
        angle = geometry["direction"] + turn
        strokes.append((tip[0] - head * math.cos(angle), tip[1] - head * math.sin(angle), *tip))
    return strokes


def _draw(geometry: dict, image_size: int) -> Image.Image:
    image = Image.new("RGB", (image_size, image_size), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    for stroke in arrow_segments(geometry):
        draw.line(stroke, fill=(0, 0, 0), width=geometry["arrow_width"])
    x, y, r = geometry["disc_x"], geometry["disc_y"], geometry["radius"]
    draw.ellipse((x - r, y - r, x + r, y + r), fill=(0, 0, 0))
    return image


def render_ape(geometry: dict, image_size: int = 192) -> torch.Tensor:
    """Draw an APE geometry: float image ``[3, S, S]`` in ``[0, 1]``, white background, black objects."""
    image_size = _check_image_size(image_size)
    # Channels-first in numpy: much cheaper per sample than a torch permute-copy inside data-loader workers.
    pixels = np.asarray(_draw(geometry, image_size)).transpose(2, 0, 1).astype(np.float32, order="C")
    pixels /= np.float32(255.0)
    return torch.from_numpy(pixels)


class APEDataset(torch.utils.data.Dataset):
    r"""Arrow-pointing extrapolation images, generated on the fly and deterministic per ``(seed, index)``.

    Args:
        num_samples (int): dataset length; classes alternate, so an even length is exactly balanced.
        image_size (int): side ``S`` in pixels (at least 120); object sizes do not scale with it.
        seed (int): stream seed; use different seeds for the training and the test split.
        return_geometry (bool): also return the geometry dict of :func:`ape_geometry`.

    Items:
        ``(image [3, S, S] float in [0, 1], label long [])``, plus the geometry dict when requested.
    """

    def __init__(self, num_samples: int, image_size: int = 192, seed: int = 0, return_geometry: bool = False):
        if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) or num_samples < 0:
            raise ValueError(f"num_samples: expected a non-negative int, got {num_samples!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed: expected a non-negative int, got {seed!r}")
        self.num_samples = int(num_samples)
        self.image_size = _check_image_size(image_size)
        self.seed = int(seed)
        self.return_geometry = bool(return_geometry)

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int):
        if not -self.num_samples <= index < self.num_samples:
            raise IndexError(f"index {index} out of range for {self.num_samples} samples")
        index = index % self.num_samples
        geometry = ape_geometry(self.seed, index, self.image_size)
        image = render_ape(geometry, self.image_size)
        label = torch.tensor(geometry["label"], dtype=torch.long)
        if self.return_geometry:
            return image, label, geometry
        return image, label

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.num_samples}, image_size={self.image_size}, seed={self.seed})"


def example_grid(seed: int = 0, small: int = 192, large: int = 384, annotate: bool = False) -> Image.Image:
    """A sheet of examples: two rows of four ``small`` images above one row of two ``large`` images, at
    native resolution (objects keep their pixel size). ``annotate`` overlays the ray (red) and the two
    tolerance circles (blue: r / 1.2, green: 1.2 r), which are not part of the data."""
    gap, caption = 8, 14
    width = 4 * small + 3 * gap
    rows = [(small, 4, 0), (small, 4, 4), (large, 2, 8)]
    height = sum(size + caption + gap for size, _, _ in rows)
    sheet = Image.new("RGB", (width, height), (128, 128, 128))
    draw = ImageDraw.Draw(sheet)
    top = 0
    for size, count, first in rows:
        for column in range(count):
            index = first + column
            geometry = ape_geometry(seed, index, size)
            tile = _draw(geometry, size)
            if annotate:
                _annotate(tile, geometry, size)
            left = column * (size + gap)
            draw.text((left + 2, top + 1), f"{size}px #{index} label {geometry['label']}", fill=(255, 255, 255))
            sheet.paste(tile, (left, top + caption))
        top += size + caption + gap
    return sheet


def _annotate(tile: Image.Image, geometry: dict, size: int):
    draw = ImageDraw.Draw(tile)
    x, y, r = geometry["disc_x"], geometry["disc_y"], geometry["radius"]
    for radius, colour in ((r / TOLERANCE, (0, 0, 255)), (r * TOLERANCE, (0, 160, 0))):
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), outline=colour)
    reach = 2 * size
    draw.line(
        (
            geometry["arrow_x"],
            geometry["arrow_y"],
            geometry["arrow_x"] + reach * math.cos(geometry["direction"]),
            geometry["arrow_y"] + reach * math.sin(geometry["direction"]),
        ),
        fill=(255, 0, 0),
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description="Write a PNG sheet of APE examples at 192 and 384 px.")
    parser.add_argument("--png", required=True, help="output path")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--annotate", action="store_true", help="overlay the ray and the tolerance circles")
    args = parser.parse_args(argv)
    pathlib.Path(args.png).parent.mkdir(parents=True, exist_ok=True)
    example_grid(seed=args.seed, annotate=args.annotate).save(args.png)


if __name__ == "__main__":
    main()
