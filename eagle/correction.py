"""Hallucination correction scan (paper §8): how much of the image must go before the answer
turns right.

For k = n, n−1, …, 1 the image keeps only the top-k regions of the counter-token explanation's
order (the lowest-ranked regions removed) and the answer is regenerated; the first k whose answer
is corrected gives the correction area 1 − a_k; no such k gives 1. AMCR is the mean correction
area; CSR@10% the share of samples corrected with at most 10% of the image removed, with
uncorrected samples counted as failures in the denominator.

What "corrected" means is the caller's: a predicate over the regenerated answer text. A yes/no
benchmark passes its answer parser compared with the ground truth (`auditors.parsing.parse_yes_no`,
the project's one parser: "None." is a no, "No doubt, ..." is not); a caption benchmark passes
"the hallucinated mention is gone". This module parses no answers itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from eagle.masking import compose
from eagle.regions import region_areas
from eagle.types import LabelMap, RGBBatch, RGBImage


@dataclass(frozen=True, kw_only=True, slots=True)
class Correction:
    corrected: bool
    k: int | None  # regions kept at the first corrected answer (None if never)
    area_removed: float  # 1 − a_k, or 1.0 when never corrected
    regenerations: int  # answers generated during the scan
    answers: tuple[str, ...]  # answers seen, from k = n downwards


def correction_scan(
    image: RGBImage,
    labels: LabelMap,
    order: np.ndarray,
    regenerate: Callable[[RGBBatch], Sequence[str]],
    corrected: Callable[[str], bool],
    *,
    batch_size: int = 16,
) -> Correction:
    """Scan k = n..1 (keep the top-k regions of `order`) until `corrected(answer)` holds.

    `regenerate` takes a batch of images (B, H, W, 3) uint8 and returns B answers; `corrected`
    says whether one regenerated answer is right, e.g.
    `lambda a: parse_yes_no(a) == "no"` for a hallucinated "Yes" (see the module docstring).
    """
    n = len(order)
    cum = np.concatenate([[0.0], np.cumsum(region_areas(labels, n)[order])])
    answers: list[str] = []
    ks = list(range(n, 0, -1))
    for start in range(0, n, batch_size):
        chunk = ks[start : start + batch_size]
        keep = np.zeros((len(chunk), n), bool)
        for r, k in enumerate(chunk):
            keep[r, order[:k]] = True
        got = list(regenerate(compose(image, labels, keep)))
        if len(got) != len(chunk):
            raise ValueError(f"regenerate returned {len(got)} answers for {len(chunk)} images")
        for k, answer in zip(chunk, got, strict=True):
            answers.append(answer)
            if corrected(answer):
                area = 0.0 if k == n else float(max(0.0, 1.0 - cum[k]))
                return Correction(
                    corrected=True, k=k, area_removed=area, regenerations=len(answers), answers=tuple(answers)
                )
    return Correction(
        corrected=False, k=None, area_removed=1.0, regenerations=len(answers), answers=tuple(answers)
    )


def amcr(corrections: Sequence[Correction]) -> float:
    """Average minimal correction region: mean area removed (uncorrected samples count 1)."""
    if not corrections:
        raise ValueError("AMCR needs at least one correction result")
    return float(np.mean([c.area_removed for c in corrections]))


def csr(corrections: Sequence[Correction], budget: float = 0.10) -> float:
    """Correction success rate: share of ALL samples corrected with at most `budget` removed."""
    if not corrections:
        raise ValueError("CSR needs at least one correction result")
    return float(np.mean([c.corrected and c.area_removed <= budget + 1e-12 for c in corrections]))
