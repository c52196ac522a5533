"""Scoring sets of regions of one image through a batched `Scorer`, counting forward passes.

`RegionScorer` turns a boolean matrix `keep` (B, n) into masked images chunk by chunk (so at most
one chunk of composed uint8 images exists at a time; a `MaskedScorer` is given the chunk's
description instead and composes nothing at full size) and checks that the scorer returns one row
per image. The chunk size only changes speed, never results.
"""

from __future__ import annotations

import numpy as np

from eagle.masking import compose
from eagle.types import LabelMap, MaskedImages, MaskedScorer, RGBImage, Scorer, ScoreRequest

# Composed-pixel budget of one chunk when no batch size is given: 64 MiB of uint8 images.
DEFAULT_CHUNK_BYTES = 64 * 2**20
MAX_CHUNK = 256


def default_chunk(image_shape: tuple[int, ...]) -> int:
    """Images per chunk so one chunk of composed images stays within DEFAULT_CHUNK_BYTES."""
    per_image = int(np.prod(image_shape))
    return int(max(1, min(MAX_CHUNK, DEFAULT_CHUNK_BYTES // max(per_image, 1))))


def objective(ins: np.ndarray, dels: np.ndarray, lambda1: float, lambda2: float) -> np.ndarray:
    """EAGLE's F per row: λ1·mean_i ins + λ2·(1 − mean_i del); ins, dels (B, N) -> (B,)."""
    return lambda1 * ins.mean(axis=-1) + lambda2 * (1.0 - dels.mean(axis=-1))


class RegionScorer:
    """Scores region sets (rows of a boolean `keep` matrix) of one image; counts forward passes."""

    def __init__(
        self,
        scorer: Scorer,
        image: RGBImage,
        labels: LabelMap,
        request: ScoreRequest,
        *,
        n_regions: int,
        batch_size: int | None = None,
    ) -> None:
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer or None, got {batch_size}")
        self.scorer = scorer
        self.image = image
        self.labels = labels
        self.request = request
        self.n = n_regions
        self.chunk = batch_size or default_chunk(image.shape)
        self.forwards = 0

    def __call__(self, keep: np.ndarray) -> np.ndarray:
        """Probabilities (B, N) float64 for the B region sets in `keep` (B, n) bool."""
        keep = np.asarray(keep, bool)
        if keep.ndim != 2 or keep.shape[1] != self.n:
            raise ValueError(f"keep must have shape (B, {self.n}), got {keep.shape}")
        n_targets = self.request.n_targets
        out = np.empty((keep.shape[0], n_targets), np.float64)
        for start in range(0, keep.shape[0], self.chunk):
            rows = keep[start : start + self.chunk]
            scores = np.asarray(self._score(rows), dtype=np.float64)
            if scores.shape != (rows.shape[0], n_targets):
                raise ValueError(
                    f"scorer {type(self.scorer).__name__} returned scores of shape {scores.shape} for "
                    f"{rows.shape[0]} images and {n_targets} targets; expected {(rows.shape[0], n_targets)}"
                )
            out[start : start + rows.shape[0]] = scores
            self.forwards += rows.shape[0]
        return out

    def _score(self, rows: np.ndarray) -> np.ndarray:
        """Scores of the masked images of `rows`: described to a MaskedScorer (which need not compose
        them at full size), composed (b, H, W, 3) uint8 for any other scorer."""
        if isinstance(self.scorer, MaskedScorer):
            return self.scorer.score_masked(MaskedImages(self.image, self.labels, rows), self.request)
        return self.scorer.score(compose(self.image, self.labels, rows), self.request)

    def black_and_full(self) -> tuple[np.ndarray, np.ndarray]:
        """f(black image) and f(full image), each (N,)."""
        both = self(np.array([np.zeros(self.n, bool), np.ones(self.n, bool)]))
        return both[0], both[1]
