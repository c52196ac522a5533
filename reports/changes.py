"""How a report words a change between two runs: better or worse only when its interval excludes 0.

A change whose paired bootstrap interval covers 0 reads "within noise" (never red or green); one
whose interval is [0, 0] (the two runs agree on every question) reads "no change"; a change without
an interval (e.g. CHAIR_i, which the store keeps only as a total) reads "changed", uncoloured.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, kw_only=True, slots=True)
class Delta:
    value: float  # later − earlier
    verdict: str  # better | worse | within noise | no change | changed
    low: float | None = None  # interval of the change (None: no interval)
    high: float | None = None
    level: float | None = None


def judge(
    value: float | None,
    better: str | None,
    low: float | None = None,
    high: float | None = None,
    level: float | None = None,
) -> Delta | None:
    """The Delta of a change `value` with interval [low, high]; `better` is "higher", "lower" or
    None (no preferred direction: a significant change reads "changed")."""
    if value is None:
        return None
    if low is None or high is None:
        verdict = "no change" if value == 0 else "changed"
    elif low == high == 0:
        verdict = "no change"
    elif low <= 0 <= high:
        verdict = "within noise"
    elif better is None:
        verdict = "changed"
    else:
        verdict = "better" if (value > 0) == (better == "higher") else "worse"
    return Delta(value=value, verdict=verdict, low=low, high=high, level=level)


def judge_difference(diff: Any, better: str | None) -> Delta | None:
    """The Delta of a `PairedDifference` (or its `to_dict()`)."""
    get = diff.get if isinstance(diff, dict) else lambda k: getattr(diff, k)
    return judge(get("difference"), better, get("low"), get("high"), get("level"))


def headline(deltas: list[Delta | None]) -> str | None:
    """One word for several changes: better, worse, mixed, within noise or no change."""
    got = {d.verdict for d in deltas if d is not None}
    if not got:
        return None
    if "better" in got and "worse" in got:
        return "mixed"
    if "worse" in got:
        return "worse"
    if "better" in got:
        return "better"
    return "no change" if got <= {"no change"} else "within noise"
