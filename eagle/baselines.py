"""Cheap black-box baselines on the same regions and scorer as EAGLE (paper §11).

Each returns an `Explanation` whose curves come from scoring every prefix of its order
(`score_order`, 2(n+1) images), so faithfulness numbers compare like with like.
`forward_passes` counts every image scored (ranking + curves); `params["ranking_forward_passes"]`
has the ranking part alone.
"""

from __future__ import annotations

import time

import numpy as np

from eagle.attribution import normalise, rank_region_scores
from eagle.explanation import Explanation
from eagle.method import explain_order
from eagle.regions import check_image, check_labels
from eagle.scoring import RegionScorer
from eagle.types import LabelMap, RGBImage, Scorer, ScoreRequest


def explain_saliency(
    method: str,
    scorer: Scorer,
    image: RGBImage,
    labels: LabelMap,
    request: ScoreRequest,
    saliency: np.ndarray,
    *,
    ranking_forwards: int,
    start: float,
    params: dict | None = None,
    batch_size: int | None = None,
) -> Explanation:
    """An Explanation from a per-region saliency (n,): regions ordered by descending saliency (ties:
    lowest id first), the curves of that order scored, the map the min-max scaled saliency.
    `ranking_forwards` is what the saliency cost; the curves add 2(n+1)."""
    saliency = np.asarray(saliency, np.float64)
    return _explanation(
        method,
        scorer,
        image,
        labels,
        request,
        _order(saliency),
        normalise(saliency),
        ranking_forwards,
        start,
        params or {},
        batch_size,
    )


def _explanation(
    method: str,
    scorer: Scorer,
    image: RGBImage,
    labels: LabelMap,
    request: ScoreRequest,
    order: np.ndarray,
    region_scores: np.ndarray,
    ranking_forwards: int,
    start: float,
    params: dict,
    batch_size: int | None,
) -> Explanation:
    return explain_order(
        scorer,
        image,
        labels,
        request,
        order,
        method=method,
        batch_size=batch_size,
        region_scores=region_scores,
        ranking_forwards=ranking_forwards,
        params={**params, "ranking_forward_passes": ranking_forwards},
        start=start,
    )


def _order(saliency: np.ndarray) -> np.ndarray:
    return np.argsort(-saliency, kind="stable").astype(np.int64)  # ties: lowest id first


def random_order(
    scorer: Scorer,
    image: RGBImage,
    labels: LabelMap,
    request: ScoreRequest,
    *,
    seed: int = 0,
    batch_size: int | None = None,
) -> Explanation:
    """A seeded random permutation of the regions (no ranking forwards)."""
    check_image(image)
    n = check_labels(labels, image.shape[:2])
    start = time.perf_counter()
    order = np.random.default_rng(seed).permutation(n).astype(np.int64)
    return _explanation(
        "random",
        scorer,
        image,
        labels,
        request,
        order,
        rank_region_scores(order),
        0,
        start,
        {"seed": seed},
        batch_size,
    )


def ablation(
    scorer: Scorer, image: RGBImage, labels: LabelMap, request: ScoreRequest, *, batch_size: int | None = None
) -> Explanation:
    """Single-region ablation: saliency of v = f̄(full) − f̄(full without v); n+1 ranking forwards."""
    check_image(image)
    n = check_labels(labels, image.shape[:2])
    start = time.perf_counter()
    rs = RegionScorer(scorer, image, labels, request, n_regions=n, batch_size=batch_size)
    keep = ~np.eye(n, dtype=bool)
    scores = rs(np.vstack([np.ones((1, n), bool), keep])).mean(axis=1)  # (n+1,)
    saliency = scores[0] - scores[1:]
    return explain_saliency(
        "ablation",
        scorer,
        image,
        labels,
        request,
        saliency,
        ranking_forwards=rs.forwards,
        start=start,
        batch_size=batch_size,
    )


def rise(
    scorer: Scorer,
    image: RGBImage,
    labels: LabelMap,
    request: ScoreRequest,
    *,
    n_masks: int = 256,
    keep_prob: float = 0.5,
    seed: int = 0,
    batch_size: int | None = None,
) -> Explanation:
    """RISE on the regions: `n_masks` random region subsets (each region kept with `keep_prob`);
    saliency of v = mean f̄ over the masks that keep v."""
    check_image(image)
    n = check_labels(labels, image.shape[:2])
    if not 0 < keep_prob < 1:
        raise ValueError(f"keep_prob must be in (0, 1), got {keep_prob}")
    start = time.perf_counter()
    rs = RegionScorer(scorer, image, labels, request, n_regions=n, batch_size=batch_size)
    masks = np.random.default_rng(seed).random((n_masks, n)) < keep_prob  # (M, n)
    scores = rs(masks).mean(axis=1)  # (M,)
    hits = masks.sum(axis=0)
    saliency = np.where(hits > 0, (masks * scores[:, None]).sum(axis=0) / np.maximum(hits, 1), 0.0)
    return explain_saliency(
        "rise",
        scorer,
        image,
        labels,
        request,
        saliency,
        ranking_forwards=rs.forwards,
        start=start,
        params={"n_masks": n_masks, "keep_prob": keep_prob, "seed": seed},
        batch_size=batch_size,
    )
