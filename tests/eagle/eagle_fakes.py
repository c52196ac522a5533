"""Tiny deterministic scorers whose output is a known function of which regions are visible.

Each region of the test image has its own non-black colour, so a fake can read back which regions
a masked image shows (a region is visible when its pixels are not black).
"""

from __future__ import annotations

import numpy as np

from eagle.types import ScoreRequest


def region_image(labels: np.ndarray) -> np.ndarray:
    """An RGB image whose region r is painted with a non-black colour unique to r."""
    r = labels.astype(np.int64)
    return np.stack([(r % 200) + 40, (r // 200) % 200 + 40, np.full_like(r, 90)], axis=-1).astype(np.uint8)


def grid_labels(rows: int, cols: int, cell: int = 4) -> np.ndarray:
    """A rows x cols grid of cell x cell squares, ids row-major."""
    ids = np.arange(rows * cols, dtype=np.int32).reshape(rows, cols)
    return np.kron(ids, np.ones((cell, cell), np.int32)).astype(np.int32)


def visible_regions(images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(B, n) bool: which regions each image shows."""
    n = int(labels.max()) + 1
    lit = images.reshape(images.shape[0], -1, 3).max(axis=-1) > 0  # (B, H*W)
    counts = np.stack([np.bincount(labels.ravel(), weights=row, minlength=n) for row in lit])
    return counts > 0


class LinearScorer:
    """f_t = visible · w_t / Σ w_t: additive, so greedy orders regions by descending weight."""

    def __init__(self, labels: np.ndarray, weights: np.ndarray) -> None:
        self.labels = labels
        self.weights = np.asarray(weights, np.float64).reshape(len(weights), -1)  # (n, N)
        self.calls: list[int] = []

    def score(self, images: np.ndarray, request: ScoreRequest) -> np.ndarray:
        self.calls.append(images.shape[0])
        vis = visible_regions(images, self.labels).astype(np.float64)
        out = vis @ self.weights / self.weights.sum(axis=0)
        return (
            out[:, : request.n_targets]
            if out.shape[1] >= request.n_targets
            else np.repeat(out[:, :1], request.n_targets, axis=1)
        )


class InteractionScorer:
    """Non-additive: a sigmoid of weights plus pairwise interactions, per target (seeded)."""

    def __init__(self, labels: np.ndarray, n_targets: int = 2, seed: int = 0) -> None:
        n = int(labels.max()) + 1
        rng = np.random.default_rng(seed)
        self.labels = labels
        self.w = rng.normal(0, 1.5, (n, n_targets))
        self.pair = rng.normal(0, 0.8, (n, n, n_targets)) * (rng.random((n, n, 1)) < 0.2)
        self.b = rng.normal(-1.0, 0.5, n_targets)
        self.calls: list[int] = []

    def score(self, images: np.ndarray, request: ScoreRequest) -> np.ndarray:
        self.calls.append(images.shape[0])
        v = visible_regions(images, self.labels).astype(np.float64)  # (B, n)
        z = v @ self.w + np.einsum("bi,bj,ijt->bt", v, v, self.pair) / len(v[0]) + self.b
        return 1.0 / (1.0 + np.exp(-z[:, : request.n_targets]))


class ConstantScorer:
    """Every image scores the same: every candidate ties."""

    def score(self, images: np.ndarray, request: ScoreRequest) -> np.ndarray:
        return np.full((images.shape[0], request.n_targets), 0.5)


def request(n_targets: int = 1) -> ScoreRequest:
    return ScoreRequest(
        prompt="Is there a star in the image?",
        answer_ids=tuple(range(10, 10 + n_targets)),
        target_positions=tuple(range(n_targets)),
        target_ids=tuple(range(10, 10 + n_targets)),
    )


class CopiesScorer:
    """Evidence drawn several times: f = 0.9·max over copies of (share of the copy shown)^0.25
    plus 0.1·(an additive term with positive weights), so one region of any copy gives most of f
    and removing a copy changes nothing while another is shown. Showing more never lowers f;
    `falling` scores 1 − f instead (a counter token: showing more never raises it)."""

    def __init__(
        self, labels: np.ndarray, copies: list[list[int]], seed: int = 0, falling: bool = False
    ) -> None:
        n = int(labels.max()) + 1
        self.labels = labels
        self.copies = copies
        self.w = np.random.default_rng(seed).random(n)
        self.falling = falling

    def score(self, images: np.ndarray, request: ScoreRequest) -> np.ndarray:
        v = visible_regions(images, self.labels).astype(np.float64)  # (B, n)
        share = np.stack([v[:, c].mean(axis=1) for c in self.copies], axis=1).max(axis=1)
        f = 0.9 * share**0.25 + 0.1 * (v @ self.w) / self.w.sum()
        f = 1.0 - f if self.falling else f
        return np.repeat(f[:, None], request.n_targets, axis=1)
