"""Masked images from a label map: kept regions visible, every other pixel black (0).

Masking happens in pixel space, before any model processor, so it is model-agnostic. A batch of
region sets is a boolean matrix `keep` (B, n); images are composed per batch in uint8 by indexing
`keep` with the label map, so memory is B·H·W (never n full-size float masks).
"""

from __future__ import annotations

import numpy as np

from eagle.types import LabelMap, RGBBatch, RGBImage


def keep_matrix(region_sets: list[list[int]] | list[tuple[int, ...]], n: int) -> np.ndarray:
    """Boolean (B, n) matrix with row b true at the regions of region_sets[b]."""
    keep = np.zeros((len(region_sets), n), bool)
    for b, regions in enumerate(region_sets):
        keep[b, list(regions)] = True
    return keep


def compose(image: RGBImage, labels: LabelMap, keep: np.ndarray) -> RGBBatch:
    """Images (B, H, W, 3) uint8 showing, for each row of `keep` (B, n) bool, only the kept regions."""
    if keep.ndim != 2 or keep.dtype != bool:
        raise ValueError(f"keep must be a boolean matrix (B, n_regions), got {keep.shape} {keep.dtype}")
    visible = keep[:, labels]  # (B, H, W) bool
    out = np.empty((len(keep), *image.shape), np.uint8)  # C order: models' input code reads it fastest
    np.multiply(image[None], visible[..., None], out=out)  # bool * uint8 stays uint8
    return out
