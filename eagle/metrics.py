"""Faithfulness and localisation metrics over explanations (paper §8).

AUCs are trapezoid areas over the cumulative area shown (insertion, higher is better) or removed
(deletion, lower is better). Sensitive-token variants use only visually sensitive tokens and
count the samples that have none instead of dropping them silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from eagle.explanation import Explanation
from eagle.modality import trapezoid

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (x1, y1 exclusive)


def insertion_auc(expl: Explanation, tokens: np.ndarray | None = None) -> float:
    """Area under the mean insertion curve; `tokens` (N,) bool restricts the mean."""
    curve = expl.insertion if tokens is None else expl.insertion[:, tokens]
    return float(trapezoid(curve.mean(axis=1), expl.areas))


def deletion_auc(expl: Explanation, tokens: np.ndarray | None = None) -> float:
    """Area under the mean deletion curve over the removed area; `tokens` restricts the mean."""
    curve = expl.deletion if tokens is None else expl.deletion[:, tokens]
    return float(trapezoid(curve.mean(axis=1), expl.areas))


def highest_confidence(expl: Explanation, tokens: np.ndarray | None = None) -> float:
    """Maximum of the mean insertion curve."""
    curve = expl.insertion if tokens is None else expl.insertion[:, tokens]
    return float(curve.mean(axis=1).max())


@dataclass(frozen=True, kw_only=True, slots=True)
class Faithfulness:
    n_samples: int
    insertion_auc: float  # mean over samples
    deletion_auc: float
    highest_confidence: float  # "average highest confidence"
    sensitive_insertion_auc: float | None  # None when no sample has a sensitive token
    sensitive_deletion_auc: float | None
    sensitive_highest_confidence: float | None
    n_without_sensitive: int  # samples left out of the sensitive variants

    def to_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__slots__}


def faithfulness(explanations: Sequence[Explanation]) -> Faithfulness:
    """Mean insertion/deletion AUC and highest confidence, plus the sensitive-token variants."""
    if not explanations:
        raise ValueError("faithfulness needs at least one explanation")
    sens = [(e, e.modality.sensitive) for e in explanations]
    with_sens = [(e, s) for e, s in sens if s.any()]

    def _mean(values: list[float]) -> float | None:
        return float(np.mean(values)) if values else None

    return Faithfulness(
        n_samples=len(explanations),
        insertion_auc=float(np.mean([insertion_auc(e) for e in explanations])),
        deletion_auc=float(np.mean([deletion_auc(e) for e in explanations])),
        highest_confidence=float(np.mean([highest_confidence(e) for e in explanations])),
        sensitive_insertion_auc=_mean([insertion_auc(e, s) for e, s in with_sens]),
        sensitive_deletion_auc=_mean([deletion_auc(e, s) for e, s in with_sens]),
        sensitive_highest_confidence=_mean([highest_confidence(e, s) for e, s in with_sens]),
        n_without_sensitive=len(explanations) - len(with_sens),
    )


def box_mask(box: Box, shape: tuple[int, int]) -> np.ndarray:
    """Boolean (H, W) mask of a box (x0, y0, x1, y1), x1/y1 exclusive."""
    x0, y0, x1, y1 = box
    if not (0 <= x0 < x1 <= shape[1] and 0 <= y0 < y1 <= shape[0]):
        raise ValueError(f"box {box} is empty or outside an image of shape {shape}")
    mask = np.zeros(shape, bool)
    mask[y0:y1, x0:x1] = True
    return mask


def _target(target: Box | np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if isinstance(target, np.ndarray):
        if target.shape != shape:
            raise ValueError(f"mask shape {target.shape} does not match the map's {shape}")
        return target.astype(bool)
    return box_mask(tuple(target), shape)  # type: ignore[arg-type]


def point_game(attribution_map: np.ndarray, target: Box | np.ndarray) -> bool:
    """Hit when the map's maximum lies on the target (a box or a boolean mask).

    A superpixel map's maximum is a whole plateau of pixels, so the hit asks that most of the
    plateau (more than half of its pixels) lies on the target.
    """
    on = _target(target, attribution_map.shape)
    top = attribution_map >= attribution_map.max() - 1e-12
    return bool(on[top].mean() > 0.5)


def energy_point_game(
    attribution_map: np.ndarray, target: Box | np.ndarray, top_fraction: float = 0.1
) -> float:
    """Stricter, continuous variant: the share of attribution energy inside the target among the
    top `top_fraction` of pixels by attribution (map clipped at 0). 1.0 = all of it on target."""
    if not 0 < top_fraction <= 1:
        raise ValueError(f"top_fraction must be in (0, 1], got {top_fraction}")
    on = _target(target, attribution_map.shape).ravel()
    values = np.clip(attribution_map.ravel(), 0, None)
    k = max(1, int(round(top_fraction * values.size)))
    idx = np.argsort(-values, kind="stable")[:k]
    total = values[idx].sum()
    if total <= 0:
        return 0.0
    return float(values[idx][on[idx]].sum() / total)


def top_region(region_scores: np.ndarray) -> int:
    """Id of the highest-scoring region (ties: the lowest id)."""
    return int(np.argmax(region_scores))


def region_on(labels: np.ndarray, region: int, target: Box | np.ndarray) -> bool:
    """True when most (more than half) of the region's pixels lie on the target."""
    on = _target(target, labels.shape)
    return bool(on[labels == region].mean() > 0.5)
