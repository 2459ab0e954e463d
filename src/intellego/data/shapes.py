"""Procedurally generated images of simple shapes with ground-truth masks.

Every image shows one object (a circle, square, triangle or cross) of random
position, size, rotation and colour on a textured random background. The
object's pixel mask is returned with the image, so attribution maps can be
scored against the truth. Generation is vectorized, needs no downloads and is
fully determined by the seed.

Example:
    >>> from intellego.data.shapes import make_shapes
    >>> data = make_shapes(8, seed=0)
    >>> image, label, mask = data[0]
    >>> tuple(image.shape), tuple(mask.shape), data.classes[label]
    ((3, 32, 32), (1, 32, 32), 'circle')
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["SHAPE_CLASSES", "ShapesData", "make_shapes"]

SHAPE_CLASSES: tuple[str, ...] = ("circle", "square", "triangle", "cross")

_MIN_RADIUS = 0.15  # object radius, as a fraction of the image side
_MAX_RADIUS = 0.28
_EXTENT = 1.2  # farthest object pixel from its centre, in radii
_PIXEL_NOISE = 0.03


@dataclass
class ShapesData:
    """A batch of shape images with labels and object masks.

    Attributes:
        images: Float32 tensor of shape ``(N, 3, H, W)`` with values in ``[0, 1]``.
        labels: Int64 tensor of shape ``(N,)``; indices into ``classes``.
        masks: Bool tensor of shape ``(N, 1, H, W)``, true on the object's pixels.
        classes: The class names, ``SHAPE_CLASSES``.

    Example:
        >>> data = make_shapes(4, seed=1)
        >>> len(data), data.images.dtype, data.masks.dtype
        (4, torch.float32, torch.bool)
    """

    images: Tensor
    labels: Tensor
    masks: Tensor
    classes: tuple[str, ...] = SHAPE_CLASSES

    def __len__(self) -> int:
        return self.labels.shape[0]

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, Tensor]:
        return self.images[index], self.labels[index], self.masks[index]


def make_shapes(n: int, *, seed: int = 0, size: int = 32) -> ShapesData:
    """Generate ``n`` shape images, deterministically from ``seed``.

    Classes are balanced (they differ in count by at most one) and shuffled.
    The object colour always contrasts with the background, but colour,
    size and background texture are drawn independently of the class, so
    only the object's outline tells the classes apart.

    Args:
        n: Number of images.
        seed: Seed of the private ``torch.Generator``; the global RNG is untouched.
        size: Side of the square images, in pixels.

    Returns:
        The images, labels and masks.

    Example:
        >>> a = make_shapes(16, seed=3)
        >>> b = make_shapes(16, seed=3)
        >>> bool((a.images == b.images).all())
        True
        >>> a.labels.bincount().tolist()
        [4, 4, 4, 4]
    """
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    gen = torch.Generator().manual_seed(seed)
    labels = (torch.arange(n) % len(SHAPE_CLASSES))[torch.randperm(n, generator=gen)]
    masks = _object_masks(labels, size, gen)
    background, object_colour = _colours(n, gen)
    texture = _background_texture(n, size, gen)
    amplitude = _uniform(gen, (n, 3, 1, 1), -0.4, 0.4)
    images = background[..., None, None] + amplitude * (texture - 0.5)
    images = torch.where(masks, object_colour[..., None, None], images)
    images = images + _PIXEL_NOISE * torch.randn(images.shape, generator=gen)
    return ShapesData(images=images.clamp(0.0, 1.0), labels=labels, masks=masks)


def _uniform(gen: torch.Generator, shape: tuple[int, ...], low: float, high: float) -> Tensor:
    return low + (high - low) * torch.rand(shape, generator=gen)


def _grid(size: int) -> tuple[Tensor, Tensor]:
    """Pixel-centre coordinates in ``[0, 1]``, each of shape ``(1, size, size)``."""
    coords = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    return x[None], y[None]


def _object_masks(labels: Tensor, size: int, gen: torch.Generator) -> Tensor:
    """Rasterize one randomly placed, sized and rotated shape per label."""
    n = labels.shape[0]
    radius = _uniform(gen, (n, 1, 1), _MIN_RADIUS, _MAX_RADIUS)
    margin = _EXTENT * radius
    cx = margin + (1 - 2 * margin) * torch.rand((n, 1, 1), generator=gen)
    cy = margin + (1 - 2 * margin) * torch.rand((n, 1, 1), generator=gen)
    angle = _uniform(gen, (n, 1, 1), 0.0, 2 * math.pi)
    x, y = _grid(size)
    dx, dy = x - cx, y - cy
    u = dx * angle.cos() + dy * angle.sin()
    v = -dx * angle.sin() + dy * angle.cos()
    candidates = torch.stack(
        [
            _circle(u, v, radius),
            _square(u, v, radius),
            _triangle(u, v, radius),
            _cross(u, v, radius),
        ],
        dim=1,
    )
    return candidates[torch.arange(n), labels][:, None]


def _circle(u: Tensor, v: Tensor, r: Tensor) -> Tensor:
    return u**2 + v**2 <= r**2


def _square(u: Tensor, v: Tensor, r: Tensor) -> Tensor:
    half_side = 0.85 * r  # about the circle's area
    return torch.maximum(u.abs(), v.abs()) <= half_side


def _triangle(u: Tensor, v: Tensor, r: Tensor) -> Tensor:
    """Equilateral triangle with circumradius ``_EXTENT * r``."""
    inradius = _EXTENT * r / 2
    inside = torch.ones_like(u, dtype=torch.bool)
    for normal_angle in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6):
        distance = u * math.cos(normal_angle) + v * math.sin(normal_angle)
        inside &= distance <= inradius
    return inside


def _cross(u: Tensor, v: Tensor, r: Tensor) -> Tensor:
    half_width = 0.3 * r
    horizontal = (u.abs() <= r) & (v.abs() <= half_width)
    vertical = (v.abs() <= r) & (u.abs() <= half_width)
    return horizontal | vertical


def _colours(n: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """Background and object RGB colours, ``(n, 3)`` each, contrasting per channel."""
    background = torch.rand((n, 3), generator=gen)
    offset = _uniform(gen, (n, 3), 0.3, 0.6)
    direction = torch.where(background > 0.5, -1.0, 1.0)
    object_colour = (background + direction * offset).clamp(0.0, 1.0)
    return background, object_colour


def _background_texture(n: int, size: int, gen: torch.Generator) -> Tensor:
    """One of smooth noise, stripes or a gradient per image, ``(n, 1, size, size)``."""
    x, y = _grid(size)
    angle = _uniform(gen, (n, 1, 1), 0.0, 2 * math.pi)
    along = x * angle.cos() + y * angle.sin()  # in [-sqrt 2, sqrt 2]
    gradient = (along + math.sqrt(2)) / (2 * math.sqrt(2))
    frequency = _uniform(gen, (n, 1, 1), 1.5, 5.0)
    phase = _uniform(gen, (n, 1, 1), 0.0, 2 * math.pi)
    stripes = 0.5 + 0.5 * torch.sin(2 * math.pi * frequency * along + phase)
    coarse = torch.rand((n, 1, 5, 5), generator=gen)
    noise = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    candidates = torch.stack([noise[:, 0].clamp(0, 1), stripes, gradient], dim=1)
    kind = torch.randint(0, 3, (n,), generator=gen)
    return candidates[torch.arange(n), kind][:, None]
