"""Which ground-truth objects drive an explained hallucination (the audit's cause table).

An explanation ranks regions for the correct outcome (the counter token of a yes/no error, or the
absence of a hallucinated caption mention), so the regions it ranks *last*, the top of `1 − map`,
are the ones driving the hallucination. Each of the top `k` of those driver regions is matched to
the ground-truth object covering more than half of its pixels (the rule of
`eagle.metrics.region_on`), or to the background when no object does. The first driver that lies
on an object names the object that drives the hallucination first.

On the probe world the planted anchors are the expected causes: the moon drives a hallucinated
star, the arrow a hallucinated ring.

Example::

    >>> found = drivers(expl.order, regions, masks)      # doctest: +SKIP
    >>> [(d.rank, d.object) for d in found]              # doctest: +SKIP
    [(1, 'moon'), (2, 'moon'), (3, None)]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from auditors.groundtruth import ObjectMasks

DRIVER_REGIONS = 3  # regions at the top of 1 − map matched to objects


@dataclass(frozen=True, kw_only=True, slots=True)
class Driver:
    """One driver region of a hallucination and the object it lies on."""

    rank: int  # 1 = the top of 1 − map (the region the explanation ranks last)
    region: int  # region id in the explanation's label map
    object: str | None  # class of the object covering more than half of the region; None: background
    instance: int | None  # that object's instance id in the masks' label map
    share: float  # share of the region's pixels on that object (on the background when object is None)

    def to_row(self) -> dict[str, Any]:
        return asdict(self)


def drivers(
    order: Sequence[int] | np.ndarray, regions: np.ndarray, masks: ObjectMasks, k: int = DRIVER_REGIONS
) -> list[Driver]:
    """The top `k` regions of `1 − map` (the last `k` of `order`, last first), each matched to the
    ground-truth object under most of its pixels. `regions` (H, W) is the explanation's label map
    and must have the masks' shape."""
    if regions.shape != masks.labels.shape:
        raise ValueError(
            f"regions {regions.shape} and object masks {masks.labels.shape} differ in size; "
            "the masks must belong to the explained image"
        )
    order = [int(r) for r in order]
    out = []
    for rank, region in enumerate(reversed(order[-k:] if k else []), start=1):
        under = masks.labels[regions == region]
        if under.size == 0:
            raise ValueError(f"region {region} has no pixels in the label map")
        ids, counts = np.unique(under, return_counts=True)
        best = int(np.argmax(np.where(ids > 0, counts, -1))) if (ids > 0).any() else None
        share_of = {int(i): c / under.size for i, c in zip(ids, counts, strict=True)}
        if best is not None and share_of[int(ids[best])] > 0.5:
            instance = int(ids[best])
            out.append(
                Driver(
                    rank=rank,
                    region=region,
                    object=masks.classes.get(instance),
                    instance=instance,
                    share=float(share_of[instance]),
                )
            )
        else:
            out.append(
                Driver(rank=rank, region=region, object=None, instance=None, share=share_of.get(0, 0.0))
            )
    return out


def first_object(found: Sequence[Driver]) -> str | None:
    """The class of the best-ranked driver region that lies on an object (None: all background)."""
    return next((d.object for d in sorted(found, key=lambda d: d.rank) if d.object is not None), None)


__all__ = ["DRIVER_REGIONS", "Driver", "drivers", "first_object"]
