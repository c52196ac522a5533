"""Images for the report: downscaled thumbnails and EAGLE heatmap overlays as data URIs.

Everything is embedded (no file or network references), so images are kept small: WebP at a
bounded size (`MAX_SIDE` pixels on the longer side). Heatmaps are rendered at report time from the
stored full-resolution map with `eagle.heatmap.overlay`, never taken from a model call.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np

MAX_SIDE = 192
WEBP_QUALITY = 82


def load_rgb(image_root: Path | None, name: str) -> np.ndarray | None:
    """The image `name` under `image_root` as (H, W, 3) uint8 RGB, or None when it is missing,
    unreadable, over the pixel cap or would resolve outside `image_root` (names come from the
    store, not from us)."""
    if image_root is None:
        return None
    from eagle.images import ImageLoadError
    from eagle.images import load_rgb as load

    root = Path(image_root).resolve()
    path = (root / name).resolve()
    if root not in path.parents or not path.is_file():
        return None
    try:
        return load(path)
    except ImageLoadError:
        return None


def _fit(image: np.ndarray, max_side: int, *, nearest: bool) -> np.ndarray:
    from PIL import Image

    h, w = image.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return image
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    resample = Image.Resampling.NEAREST if nearest else Image.Resampling.LANCZOS
    return np.asarray(Image.fromarray(image).resize(size, resample))


def data_uri(image: np.ndarray, *, max_side: int = MAX_SIDE, quality: int = WEBP_QUALITY) -> str:
    """(H, W, 3) uint8 RGB downscaled to at most `max_side` and encoded as a WebP data URI."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(_fit(image, max_side, nearest=False)).save(buf, format="WEBP", quality=quality, method=4)
    return "data:image/webp;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def heatmap(image: np.ndarray | None, attribution_map: np.ndarray, *, hallucination: bool) -> np.ndarray:
    """The overlay of `attribution_map` (H, W) in [0, 1] on `image` (grey when None); with
    `hallucination` the map shown is 1 − map. A map of another size is resized (nearest) first."""
    from PIL import Image

    from eagle.heatmap import overlay

    values = np.clip(np.nan_to_num(np.asarray(attribution_map, np.float64)), 0.0, 1.0)
    if values.ndim != 2:
        raise ValueError(f"attribution map must be 2-D (H, W), got shape {values.shape}")
    if image is None:
        image = np.full(values.shape + (3,), 128, np.uint8)
    if values.shape != image.shape[:2]:
        h, w = image.shape[:2]
        values = np.asarray(
            Image.fromarray(values.astype(np.float32)).resize((w, h), Image.Resampling.NEAREST), np.float64
        )
    return overlay(image, values, alpha=0.55, hallucination=hallucination, min_size=0)


def ramp_css(stops: int = 11) -> str:
    """CSS linear-gradient of the heatmap colour ramp (eagle.heatmap.colorize), for its legend."""
    from eagle.heatmap import colorize

    rgb = colorize(np.linspace(0.0, 1.0, stops)[None, :])[0]
    parts = [f"rgb({r},{g},{b}) {100 * i / (stops - 1):.0f}%" for i, (r, g, b) in enumerate(rgb.tolist())]
    return "linear-gradient(to right, " + ", ".join(parts) + ")"
