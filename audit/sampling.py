"""`--limit N`: a seeded random sample of N questions, stratified so every stratum (split and label)
keeps its share of the whole.

Taking the first N questions skews the splits: POPE's positive questions are shared by the three
splits, so the first unique questions of "random" also answer most "yes" questions of "popular"
and "adversarial" (their yes-ratios rose to 0.69 and 0.72 on RePOPE). Here the unit is one question
(one sample id), each stratum gets its proportional share of N (largest remainder), and a pair asked
for several chosen questions is still asked once. The sampling is a generic function over any items
with a stratum key, so a benchmark plug-in can hand its own items to it.

Example::

    >>> chosen, record = stratified_sample(list(range(10)), 4, seed=0, stratum=lambda i: i % 2)
    >>> len(chosen), record.per_stratum
    (4, {'0': 2, '1': 2})
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")

METHOD = "stratified random sample without replacement, proportional allocation (largest remainder)"


@dataclass(frozen=True, kw_only=True)
class Sampling:
    """How a run's questions were chosen (recorded in `runs.sampling`)."""

    method: str  # "all" or METHOD
    limit: int | None
    seed: int | None
    strata: tuple[str, ...]  # what a stratum is made of, e.g. ("split", "pope_label", "repope_label")
    population: int  # questions available
    questions: int  # questions chosen
    per_stratum: dict[str, int] = field(default_factory=dict)  # chosen per stratum ("random/no/no": 12)

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "limit": self.limit,
            "seed": self.seed,
            "strata": list(self.strata),
            "population": self.population,
            "questions": self.questions,
            "per_stratum": dict(self.per_stratum),
        }


def allocate(sizes: Sequence[int], n: int) -> list[int]:
    """Split n over strata of `sizes` in proportion (largest remainder; ties to the earlier stratum)."""
    total = sum(sizes)
    if n >= total:
        return list(sizes)
    exact = [n * s / total for s in sizes]
    out = [int(e) for e in exact]
    order = sorted(range(len(sizes)), key=lambda i: (-(exact[i] - out[i]), i))
    for i in order[: n - sum(out)]:
        out[i] += 1
    return out


def stratified_sample(
    items: Sequence[T],
    limit: int | None,
    *,
    seed: int,
    stratum: Callable[[T], Hashable],
    strata: tuple[str, ...] = (),
) -> tuple[list[T], Sampling]:
    """Up to `limit` of `items`, each stratum (`stratum(item)`) keeping its proportional share;
    the same items, limit and seed always give the same sample, returned in the items' order.
    `limit` None (or >= len(items)) keeps everything."""
    groups: dict[Hashable, list[int]] = {}
    for i, item in enumerate(items):
        groups.setdefault(stratum(item), []).append(i)
    keys = sorted(groups, key=repr)  # a fixed stratum order, whatever order the items came in
    name = {k: "/".join(map(str, k)) if isinstance(k, tuple) else str(k) for k in keys}
    if limit is None or limit >= len(items):
        return list(items), Sampling(
            method="all",
            limit=limit,
            seed=None,
            strata=strata,
            population=len(items),
            questions=len(items),
            per_stratum={name[k]: len(groups[k]) for k in keys},
        )
    counts = allocate([len(groups[k]) for k in keys], limit)
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for key, n in zip(keys, counts, strict=True):
        members = groups[key]
        # a whole permutation per stratum: the random stream depends only on the strata sizes
        picks = rng.permutation(len(members))[:n]
        chosen += [members[j] for j in picks]
    chosen.sort()
    return [items[i] for i in chosen], Sampling(
        method=METHOD,
        limit=limit,
        seed=seed,
        strata=strata,
        population=len(items),
        questions=len(chosen),
        per_stratum={name[k]: n for k, n in zip(keys, counts, strict=True)},
    )
