"""Which ground-truth objects drive an explained hallucination (the audit's cause table).

An explanation ranks regions for the correct outcome (the counter token of a yes/no error, or the
absence of a hallucinated caption mention), so the regions it ranks *last*, the top of `1 − map`,
drive the hallucination. Each ground-truth object is matched to the regions it overlaps: its
driver `score` is the mean of `1 − map` over its pixels (each region it overlaps weighted by the
overlap), and `top_share` the share of its pixels inside the top `k` driver regions. Objects are
ranked by score; rank 1 is the object the explanation names first as the cause. The background
(pixels of no object) gets an entry too, without a rank, so a hallucination driven by empty space
is visible as such.

On the probe world the planted anchors are the expected causes: the moon drives a hallucinated
star, the arrow a hallucinated ring.

Example::

    >>> found = drivers(expl.order, regions, masks, expl.region_scores)   # doctest: +SKIP
    >>> [(d.rank, d.object, round(d.score, 2)) for d in found]    # doctest: +SKIP
    [(1, 'moon', 0.97), (2, 'circle', 0.41), (None, None, 0.35)]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from auditors.groundtruth import ObjectMasks

DRIVER_REGIONS = 3  # the top regions of 1 − map whose coverage of each object is reported


@dataclass(frozen=True, kw_only=True, slots=True)
class Driver:
    """One ground-truth object (or the background) and how much it drives a hallucination."""

    rank: int | None  # 1 = the object with the highest score; None for the background
    object: str | None  # the object's class; None: the background
    instance: int | None  # the object's id in the image's masks; None: the background
    score: float  # mean of 1 − map over its pixels, in [0, 1]
    top_share: float  # share of its pixels inside the top-k driver regions

    def to_row(self) -> dict[str, Any]:
        return asdict(self)


def drivers(
    order: Sequence[int] | np.ndarray,
    regions: np.ndarray,
    masks: ObjectMasks,
    region_scores: Sequence[float] | np.ndarray | None = None,
    k: int = DRIVER_REGIONS,
) -> list[Driver]:
    """Every object of `masks` (and the background) scored by an explanation: its region `order`
    (most important first) and `region_scores` (the map per region id, 1 = most important; None:
    evenly spaced by rank) over the label map `regions` (H, W), which must have the masks' shape.
    Objects first, by rank (ties: the object on later-ranked regions first); the background last."""
    if regions.shape != masks.labels.shape:
        raise ValueError(
            f"regions {regions.shape} and object masks {masks.labels.shape} differ in size; "
            "the masks must belong to the explained image"
        )
    order = np.asarray(order, np.int64)
    n = len(order)
    if n == 0:
        return []
    position = np.empty(n, np.float64)
    position[order] = np.arange(n) / max(n - 1, 1)  # (n,) 0 for the first region, 1 for the last
    drive = (
        1.0 - np.asarray(region_scores, np.float64) if region_scores is not None else position
    )  # (n,) 1 − map
    top = np.zeros(n, bool)
    top[order[-k:] if k else []] = True
    pixel_drive, pixel_position, pixel_top = drive[regions], position[regions], top[regions]  # (H, W) each
    found = []
    for instance in sorted(int(i) for i in np.unique(masks.labels) if i > 0):
        on = masks.labels == instance
        found.append(
            (
                instance,
                float(pixel_drive[on].mean()),
                float(pixel_position[on].mean()),
                float(pixel_top[on].mean()),
            )
        )
    found.sort(key=lambda f: (-f[1], -f[2], f[0]))
    out = [
        Driver(rank=r, object=masks.classes.get(i), instance=i, score=score, top_share=share)
        for r, (i, score, _, share) in enumerate(found, start=1)
    ]
    background = masks.labels == 0
    if background.any():
        out.append(
            Driver(
                rank=None,
                object=None,
                instance=None,
                score=float(pixel_drive[background].mean()),
                top_share=float(pixel_top[background].mean()),
            )
        )
    return out


def first_object(found: Sequence[Driver]) -> str | None:
    """The class of the rank-1 object (None when the image has no object)."""
    return next((d.object for d in found if d.rank == 1), None)


__all__ = ["DRIVER_REGIONS", "Driver", "drivers", "first_object"]
