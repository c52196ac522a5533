"""Heatmap overlays of an attribution map on its image, written as PNG.

The colour map is a small built-in "jet"-like ramp (no matplotlib). `hallucination=True` shows
1 − map: for a counter-token explanation, the regions that drive the hallucinated answer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from eagle.regions import check_image
from eagle.types import RGBImage

# (position, r, g, b): dark blue -> blue -> cyan -> yellow -> red
_STOPS = np.array(
    [[0.0, 0, 0, 128], [0.25, 0, 64, 255], [0.5, 0, 230, 230], [0.75, 255, 230, 0], [1.0, 220, 0, 0]],
    np.float64,
)


def colorize(values: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] (H, W) to RGB uint8 (H, W, 3)."""
    v = np.clip(values, 0.0, 1.0)
    rgb = [np.interp(v, _STOPS[:, 0], _STOPS[:, c]) for c in (1, 2, 3)]
    return np.stack(rgb, axis=-1).round().astype(np.uint8)


def overlay(
    image: RGBImage,
    attribution_map: np.ndarray,
    *,
    alpha: float = 0.5,
    hallucination: bool = False,
    min_size: int = 256,
) -> RGBImage:
    """Blend the coloured map over the image; small images are upscaled (nearest) to `min_size`."""
    check_image(image)
    if attribution_map.shape != image.shape[:2]:
        raise ValueError(f"map shape {attribution_map.shape} does not match the image's {image.shape[:2]}")
    values = 1.0 - attribution_map if hallucination else attribution_map
    blended = (1 - alpha) * image.astype(np.float64) + alpha * colorize(values).astype(np.float64)
    out = blended.round().astype(np.uint8)
    scale = max(1, int(np.ceil(min_size / max(image.shape[:2]))))
    if scale > 1:
        out = np.repeat(np.repeat(out, scale, axis=0), scale, axis=1)
    return out


def save_png(image: RGBImage, path: Path | str) -> Path:
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, format="PNG")
    return path
