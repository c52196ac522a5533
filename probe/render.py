"""Pixel-level drawing for the probe world: shape masks, textured backgrounds, object fills.

All randomness comes from the `numpy.random.Generator` passed in, so a scene is a pure function
of its seed. Masks are drawn aliased (no anti-aliasing) so that the ground-truth mask is exactly
the set of pixels that carry the object's colour.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

IMAGE_SIZE = 128


def _polygon(size: int, points: list[tuple[float, float]], angle: float) -> np.ndarray:
    """Rasterise a polygon given in unit coordinates ([-1, 1]^2), rotated by `angle` radians."""
    c, s = math.cos(angle), math.sin(angle)
    half = (size - 1) / 2
    pts = [(half + half * (x * c - y * s), half + half * (x * s + y * c)) for x, y in points]
    img = Image.new("L", (size, size), 0)
    ImageDraw.Draw(img).polygon(pts, fill=255)
    return np.asarray(img) > 0


def _disc(size: int, cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    half = (size - 1) / 2
    return (xx - half - cx * half) ** 2 + (yy - half - cy * half) ** 2 <= (r * half) ** 2


def _star(n: int = 5, inner: float = 0.45) -> list[tuple[float, float]]:
    pts = []
    for k in range(2 * n):
        r = 1.0 if k % 2 == 0 else inner
        a = -math.pi / 2 + k * math.pi / n
        pts.append((r * math.cos(a), r * math.sin(a)))
    return pts


def _regular(n: int) -> list[tuple[float, float]]:
    return [(math.cos(2 * math.pi * k / n), math.sin(2 * math.pi * k / n)) for k in range(n)]


def _heart() -> list[tuple[float, float]]:
    pts = []
    for k in range(48):
        t = 2 * math.pi * k / 48
        x = 16 * math.sin(t) ** 3
        y = 13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)
        pts.append((x / 17, -y / 17 + 0.1))
    return pts


_CROSS = [
    (-0.3, -1),
    (0.3, -1),
    (0.3, -0.3),
    (1, -0.3),
    (1, 0.3),
    (0.3, 0.3),
    (0.3, 1),
    (-0.3, 1),
    (-0.3, 0.3),
    (-1, 0.3),
    (-1, -0.3),
    (-0.3, -0.3),
]
_ARROW = [(-1, -0.18), (0.25, -0.18), (0.25, -0.6), (1, 0), (0.25, 0.6), (0.25, 0.18), (-1, 0.18)]
_BOLT = [(-0.15, -1), (0.55, -1), (0.1, -0.15), (0.55, -0.15), (-0.35, 1), (-0.05, 0.15), (-0.5, 0.15)]
_DIAMOND = [(0, -1), (0.62, 0), (0, 1), (-0.62, 0)]


def shape_mask(name: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask (size, size) of one object of class `name`, randomly rotated where it makes sense."""
    angle = float(rng.uniform(-0.45, 0.45))
    if name == "circle":
        return _disc(size, 0, 0, 0.95)
    if name == "square":
        return _polygon(size, [(-0.72, -0.72), (0.72, -0.72), (0.72, 0.72), (-0.72, 0.72)], angle)
    if name == "triangle":
        return _polygon(size, [(0, -1), (0.95, 0.75), (-0.95, 0.75)], angle)
    if name == "star":
        return _polygon(size, _star(), angle)
    if name == "heart":
        return _polygon(size, _heart(), angle * 0.5)
    if name == "cross":
        return _polygon(size, _CROSS, angle)
    if name == "diamond":
        return _polygon(size, _DIAMOND, angle * 0.5)
    if name == "moon":
        dx = float(rng.uniform(0.35, 0.5)) * (1 if rng.random() < 0.5 else -1)
        return _disc(size, 0, 0, 0.95) & ~_disc(size, dx, -0.15, 0.8)
    if name == "ring":
        return _disc(size, 0, 0, 0.95) & ~_disc(size, 0, 0, 0.5)
    if name == "arrow":
        return _polygon(size, _ARROW, float(rng.uniform(-math.pi, math.pi)))
    if name == "hexagon":
        return _polygon(size, _regular(6), angle)
    if name == "bolt":
        return _polygon(size, _BOLT, angle * 0.5)
    raise ValueError(f"no drawing for shape {name!r}")


def background(rng: np.random.Generator, size: int = IMAGE_SIZE) -> np.ndarray:
    """A desaturated, textured mid-tone background: smooth blobs, fine noise, sometimes stripes."""
    grey = float(rng.uniform(85, 165))
    low = rng.normal(size=(6, 6, 3)).astype(np.float32)
    low_img = np.stack(
        [np.asarray(Image.fromarray(low[..., c]).resize((size, size), Image.BILINEAR)) for c in range(3)], -1
    )
    luminance = low_img.mean(-1, keepdims=True)
    tint = low_img - luminance
    bg = grey + 22 * luminance + 6 * tint
    if rng.random() < 0.35:
        yy, xx = np.mgrid[0:size, 0:size]
        theta = rng.uniform(0, math.pi)
        period = rng.uniform(6, 16)
        stripes = np.sin((xx * math.cos(theta) + yy * math.sin(theta)) * 2 * math.pi / period)
        bg = bg + 9 * stripes[..., None]
    bg = bg + rng.normal(0, 7, size=(size, size, 1)) + rng.normal(0, 3, size=(size, size, 3))
    return np.clip(bg, 45, 205).astype(np.uint8)


def fill(rgb: tuple[int, int, int], shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Object colour with a small per-object jitter and per-pixel noise, (h, w, 3) uint8."""
    base = np.asarray(rgb, np.float32) + rng.uniform(-12, 12, size=3)
    noise = rng.normal(0, 6, size=(*shape, 1))
    return np.clip(base + noise, 0, 255).astype(np.uint8)
