"""Hallucination correction scan (paper §8): how much of the image must go before the answer
turns right.

For k = n, n−1, …, 1 the image keeps only the top-k regions of the counter-token explanation's
order (the lowest-ranked regions removed) and the answer is regenerated; the first k whose answer
matches the ground truth gives the correction area 1 − a_k; no such k gives 1. AMCR is the mean
correction area; CSR@10% the share of samples corrected with at most 10% of the image removed,
with uncorrected samples counted as failures in the denominator.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from eagle.masking import compose
from eagle.regions import region_areas
from eagle.types import LabelMap, RGBBatch, RGBImage

YesNo = Literal["yes", "no", "unparsed"]
_WORD = re.compile(r"[a-z]+")


def parse_yes_no(text: str) -> YesNo:
    """Normalised yes/no: the first word, case-folded, punctuation ignored ("None" is not "No")."""
    match = _WORD.search(text.lower())
    if match is None:
        return "unparsed"
    word = match.group(0)
    return word if word in ("yes", "no") else "unparsed"  # type: ignore[return-value]


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
    truth: str,
    *,
    matcher: Callable[[str], str] = parse_yes_no,
    batch_size: int = 16,
) -> Correction:
    """Scan k = n..1 (keep the top-k regions of `order`) until `regenerate` answers `truth`.

    `regenerate` takes a batch of images (B, H, W, 3) uint8 and returns B answers; answers are
    compared through `matcher` (default the yes/no parser) with `matcher(truth)`.
    """
    n = len(order)
    want = matcher(truth)
    if want == "unparsed":
        raise ValueError(f"ground truth {truth!r} is not an answer the matcher understands")
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
            if matcher(answer) == want:
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
