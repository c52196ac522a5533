"""Sub-regions of an image as one integer label map (H, W) with ids 0..n-1.

`SlicoSegmenter` is SLICO (zero-parameter SLIC) from scikit-image on RGB converted to Lab, with
connectivity enforced, so regions are contiguous and there are no stray one-pixel labels (the
research code ran OpenCV's SLICO on raw BGR without either). Any object with a
`segment(image) -> LabelMap` method is a `Segmenter` and can replace it.

Example::

    >>> import numpy as np
    >>> image = np.zeros((32, 32, 3), np.uint8); image[:, 16:] = 200
    >>> labels = SlicoSegmenter(n_segments=4).segment(image)
    >>> labels.shape, labels.dtype, int(labels.min())
    ((32, 32), dtype('int32'), 0)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from eagle.types import LabelMap, RGBImage


@runtime_checkable
class Segmenter(Protocol):
    """Splits an image into regions; returns a label map (H, W) int32 with ids 0..n-1."""

    def segment(self, image: RGBImage) -> LabelMap: ...


def check_image(image: RGBImage, name: str = "image") -> RGBImage:
    """Raise unless `image` is an RGB uint8 array (H, W, 3)."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", type(image).__name__)
        raise ValueError(f"{name} must be an RGB array of shape (H, W, 3), got {shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8 (0..255), got {image.dtype}; convert with .astype(np.uint8)")
    return image


def relabel(labels: np.ndarray) -> LabelMap:
    """Map arbitrary integer labels to contiguous ids 0..n-1 (in order of first sorted value)."""
    _, inverse = np.unique(labels, return_inverse=True)
    return inverse.reshape(labels.shape).astype(np.int32)


def check_labels(labels: LabelMap, shape: tuple[int, int] | None = None) -> int:
    """Validate a label map (ids exactly 0..n-1, each used) and return the region count n."""
    if not isinstance(labels, np.ndarray) or labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"regions must be an integer label map (H, W), got {getattr(labels, 'shape', labels)!r} "
            f"of dtype {getattr(labels, 'dtype', None)}"
        )
    if shape is not None and labels.shape != tuple(shape):
        raise ValueError(f"label map shape {labels.shape} does not match the image's {tuple(shape)}")
    n = int(labels.max()) + 1 if labels.size else 0
    if labels.size == 0 or labels.min() < 0 or np.bincount(labels.ravel(), minlength=n).min() == 0:
        raise ValueError(
            "region ids must be exactly 0..n-1 with every id used; pass the map through relabel()"
        )
    return n


def region_adjacency(labels: LabelMap, n: int | None = None) -> np.ndarray:
    """(n, n) bool: regions i and j share an edge (4-neighbourhood); the diagonal is False."""
    n = int(labels.max()) + 1 if n is None else n
    adj = np.zeros((n, n), bool)
    for a, b in ((labels[:, 1:], labels[:, :-1]), (labels[1:, :], labels[:-1, :])):
        edge = a != b
        adj[a[edge], b[edge]] = True
    return adj | adj.T


def region_centroids(labels: LabelMap, n: int | None = None) -> np.ndarray:
    """(n, 2) mean (x, y) pixel position of each region."""
    n = int(labels.max()) + 1 if n is None else n
    ys, xs = np.indices(labels.shape)
    counts = np.maximum(np.bincount(labels.ravel(), minlength=n), 1)
    return np.stack(
        [np.bincount(labels.ravel(), weights=c.ravel(), minlength=n) / counts for c in (xs, ys)], axis=1
    )


def region_areas(labels: LabelMap, n: int | None = None) -> np.ndarray:
    """Share of the image covered by each region, (n,) float64 summing to 1."""
    counts = np.bincount(labels.ravel(), minlength=n or 0).astype(np.float64)
    return counts / labels.size


@dataclass(frozen=True, kw_only=True, slots=True)
class SlicoSegmenter:
    """SLICO superpixels. `n_segments` is the division number d (the region count only
    approximates it). Default 64, as in the paper's experiments."""

    n_segments: int = 64
    max_num_iter: int = 20

    def __post_init__(self) -> None:
        if self.n_segments < 1:
            raise ValueError(f"n_segments must be at least 1, got {self.n_segments}")

    def segment(self, image: RGBImage) -> LabelMap:
        from skimage.segmentation import slic

        check_image(image)
        if self.n_segments == 1:
            return np.zeros(image.shape[:2], np.int32)
        labels = slic(
            image,
            n_segments=self.n_segments,
            slic_zero=True,
            start_label=0,
            max_num_iter=self.max_num_iter,
            enforce_connectivity=True,
            convert2lab=True,
            channel_axis=-1,
        )
        return relabel(labels)


@dataclass(frozen=True, kw_only=True, slots=True)
class GridSegmenter:
    """A rows x cols grid of rectangles: a content-independent segmenter for tests and baselines."""

    rows: int = 8
    cols: int = 8

    def segment(self, image: RGBImage) -> LabelMap:
        check_image(image)
        h, w = image.shape[:2]
        if self.rows > h or self.cols > w:
            raise ValueError(f"a {self.rows}x{self.cols} grid does not fit a {h}x{w} image")
        r = np.minimum(np.arange(h) * self.rows // h, self.rows - 1)
        c = np.minimum(np.arange(w) * self.cols // w, self.cols - 1)
        return (r[:, None] * self.cols + c[None, :]).astype(np.int32)
