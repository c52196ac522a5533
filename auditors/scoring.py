"""Confusion metrics for yes/no answers, per-class rates, and image-clustered confidence intervals.

Conventions (one policy for every metric, so the numbers agree with each other):

- An answer is parsed to yes / no / unparsed (`auditors.parsing`). Unparsed answers are counted in
  `unparsed` and in `n`, and in none of TP/FP/TN/FN.
- Precision, recall, F1, accuracy and the predicted yes-ratio are computed over the *parsed*
  answers (`n - unparsed`); read them together with `unparsed`, which says how much was left out.
  The yes-ratio is the share of parsed answers that say "yes" (the model's behaviour), not the
  share of "yes" labels.
- A rate whose denominator is zero (recall on a split with no positives, precision when the model
  never says yes) is None ("undefined"), never a division error and never a silent 0.

Uncertainty: questions about the same image are correlated, so intervals resample *images*
(cluster bootstrap: draw images with replacement, keep all their questions, recompute the metric;
percentile interval). Seeded, so the same answers give the same interval.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

Outcome = Literal["tp", "fp", "tn", "fn", "unparsed"]
METRICS = ("precision", "recall", "f1", "accuracy", "yes_ratio")


def outcome(label: str, verdict: str) -> Outcome:
    """TP/FP/TN/FN of one answer ("yes" is the positive class), or "unparsed"."""
    if verdict == "unparsed":
        return "unparsed"
    if label not in ("yes", "no") or verdict not in ("yes", "no"):
        raise ValueError(
            f"label must be yes/no and verdict yes/no/unparsed, got label={label!r} verdict={verdict!r}"
        )
    if verdict == "yes":
        return "tp" if label == "yes" else "fp"
    return "tn" if label == "no" else "fn"


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


@dataclass(frozen=True, kw_only=True, slots=True)
class Confusion:
    """Counts of one group of answers and the metrics derived from them."""

    tp: int = 0
    fp: int = 0
    tn: int = 0
    fn: int = 0
    unparsed: int = 0

    @classmethod
    def from_outcomes(cls, outcomes: Iterable[str]) -> Confusion:
        counts = {"tp": 0, "fp": 0, "tn": 0, "fn": 0, "unparsed": 0}
        for o in outcomes:
            if o not in counts:
                raise ValueError(f"unknown outcome {o!r}; expected one of {sorted(counts)}")
            counts[o] += 1
        return cls(**counts)

    @property
    def parsed(self) -> int:
        return self.tp + self.fp + self.tn + self.fn

    @property
    def n(self) -> int:
        """Answered questions, parsed or not."""
        return self.parsed + self.unparsed

    @property
    def precision(self) -> float | None:
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float | None:
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float | None:
        # 2TP / (2TP + FP + FN): equal to the harmonic mean where that is defined, and defined
        # (as 0) when TP = 0 but there were errors.
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    @property
    def accuracy(self) -> float | None:
        return _ratio(self.tp + self.tn, self.parsed)

    @property
    def yes_ratio(self) -> float | None:
        """Share of parsed answers that are "yes" (predicted, not labelled)."""
        return _ratio(self.tp + self.fp, self.parsed)

    @property
    def false_positive_rate(self) -> float | None:
        """FP / (FP + TN): how often the model says yes to an absent object."""
        return _ratio(self.fp, self.fp + self.tn)

    @property
    def false_negative_rate(self) -> float | None:
        return _ratio(self.fn, self.fn + self.tp)

    def __add__(self, other: Confusion) -> Confusion:
        return Confusion(
            tp=self.tp + other.tp,
            fp=self.fp + other.fp,
            tn=self.tn + other.tn,
            fn=self.fn + other.fn,
            unparsed=self.unparsed + other.unparsed,
        )

    def to_dict(self) -> dict[str, int | float | None]:
        """The CLI/JSON shape: tp fp tn fn precision recall f1 accuracy yes_ratio unparsed n."""
        return {
            "tp": self.tp,
            "fp": self.fp,
            "tn": self.tn,
            "fn": self.fn,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "accuracy": self.accuracy,
            "yes_ratio": self.yes_ratio,
            "unparsed": self.unparsed,
            "n": self.n,
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class Interval:
    """A confidence interval of one metric; None bounds where the metric is undefined."""

    metric: str
    estimate: float | None
    low: float | None
    high: float | None
    level: float  # e.g. 0.95
    method: str  # "image-cluster bootstrap (percentile)"
    n_boot: int
    n_clusters: int
    seed: int

    def to_dict(self) -> dict[str, object]:
        return {
            "metric": self.metric,
            "estimate": self.estimate,
            "low": self.low,
            "high": self.high,
            "level": self.level,
            "method": self.method,
            "n_boot": self.n_boot,
            "n_clusters": self.n_clusters,
        }


OUTCOME_COLUMNS: tuple[Outcome, ...] = ("tp", "fp", "tn", "fn", "unparsed")
# Rates computable from outcome counts besides METRICS: FP / (FP + TN), and unparsed / all answers.
EXTRA_RATES = ("hallucination_rate", "unparsed_share")


def metric_values(counts: np.ndarray, metric: str) -> np.ndarray:
    """A metric over rows of outcome counts, vectorised: `counts` is (..., 5) in OUTCOME_COLUMNS
    order (tp, fp, tn, fn, unparsed; (..., 4) without unparsed), the result (...) float64 with NaN
    where the metric is undefined. The formulas are `Confusion`'s; `hallucination_rate` is its
    false_positive_rate and `unparsed_share` is unparsed / n."""
    tp, fp, tn, fn = (counts[..., i].astype(np.float64) for i in range(4))
    if metric == "precision":
        num, den = tp, tp + fp
    elif metric == "recall":
        num, den = tp, tp + fn
    elif metric == "f1":
        num, den = 2 * tp, 2 * tp + fp + fn
    elif metric == "accuracy":
        num, den = tp + tn, tp + fp + tn + fn
    elif metric == "yes_ratio":
        num, den = tp + fp, tp + fp + tn + fn
    elif metric == "hallucination_rate":
        num, den = fp, fp + tn
    elif metric == "unparsed_share":
        if counts.shape[-1] < 5:
            raise ValueError("unparsed_share needs (..., 5) counts with the unparsed column")
        num = counts[..., 4].astype(np.float64)
        den = tp + fp + tn + fn + num
    else:
        raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS + EXTRA_RATES)}")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def outcome_counts(outcomes: Sequence[str], clusters: Sequence[str]) -> tuple[dict[str, int], np.ndarray]:
    """Per-cluster outcome counts: (cluster id -> row, (G, 5) int64 counts in OUTCOME_COLUMNS order),
    rows in order of first appearance."""
    if len(outcomes) != len(clusters):
        raise ValueError(
            f"{len(outcomes)} outcomes but {len(clusters)} cluster ids: give one image per answer"
        )
    ids: dict[str, int] = {}
    for c in clusters:
        ids.setdefault(c, len(ids))
    counts = np.zeros((len(ids), len(OUTCOME_COLUMNS)), np.int64)
    for o, c in zip(outcomes, clusters, strict=True):
        if o not in OUTCOME_COLUMNS:
            raise ValueError(f"unknown outcome {o!r}; expected one of {', '.join(OUTCOME_COLUMNS)}")
        counts[ids[c], OUTCOME_COLUMNS.index(o)] += 1
    return ids, counts


@functools.lru_cache(maxsize=8)
def bootstrap_weights(n_clusters: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n_clusters) multiplicities: each replicate draws `n_clusters` clusters with
    replacement. Every bootstrap in the project resamples through this one function. Read-only and
    cached: a comparison's groups over the same number of images share one draw matrix."""
    rng = np.random.default_rng(seed)
    if n_clusters == 0:
        weights = np.zeros((n_boot, 0), np.int64)
    else:
        weights = rng.multinomial(n_clusters, np.full(n_clusters, 1.0 / n_clusters), size=n_boot)
    weights.flags.writeable = False
    return weights


def cluster_bootstrap(
    outcomes: Sequence[str],
    clusters: Sequence[str],
    metrics: Sequence[str] = METRICS,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, Interval]:
    """Percentile intervals for `metrics`, resampling clusters (images) with replacement.

    `outcomes[i]` is tp/fp/tn/fn/unparsed of question i and `clusters[i]` its image. Every
    bootstrap replicate draws as many images as there are, with replacement, and sums their
    counts; unparsed answers drop out exactly as in `Confusion`.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    ids, per_cluster = outcome_counts(outcomes, clusters)  # (G, 5) counts per image
    n_clusters = len(ids)
    total = per_cluster.sum(axis=0)
    boot = bootstrap_weights(n_clusters, n_boot, seed) @ per_cluster  # (n_boot, 5)
    out: dict[str, Interval] = {}
    for metric in metrics:
        estimate = float(metric_values(total, metric))
        out[metric] = _interval(
            metric, estimate, metric_values(boot, metric), level, n_boot, n_clusters, seed
        )
    return out


def ratio_bootstrap(
    numerators: Sequence[float],
    denominators: Sequence[float],
    clusters: Sequence[str],
    *,
    metric: str,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Percentile interval of a ratio of sums, Σ numerators / Σ denominators (CHAIR_i: hallucinated
    mentions / mentions), resampling clusters (images) with replacement like `cluster_bootstrap`.
    One entry per sample; samples of one cluster are summed before resampling."""
    if not len(numerators) == len(denominators) == len(clusters):
        raise ValueError(
            f"{len(numerators)} numerators, {len(denominators)} denominators, {len(clusters)} cluster ids: "
            "give one of each per sample"
        )
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    ids: dict[str, int] = {}
    per_cluster = np.zeros((len(set(clusters)), 2), np.float64)  # (G, 2): numerator, denominator
    for num, den, c in zip(numerators, denominators, clusters, strict=True):
        per_cluster[ids.setdefault(c, len(ids)), :] += (num, den)
    total = per_cluster.sum(axis=0)
    boot = bootstrap_weights(len(ids), n_boot, seed) @ per_cluster  # (n_boot, 2)

    def ratio(x: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(x[..., 1] > 0, x[..., 0] / np.where(x[..., 1] > 0, x[..., 1], 1), np.nan)

    return _interval(metric, float(ratio(total)), ratio(boot), level, n_boot, len(ids), seed)


def _interval(
    metric: str, estimate: float, values: np.ndarray, level: float, n_boot: int, n_clusters: int, seed: int
) -> Interval:
    """The percentile interval of bootstrap `values` (NaN replicates, where undefined, dropped)."""
    values = values[~np.isnan(values)]
    alpha = (1 - level) / 2
    if np.isnan(estimate) or values.size == 0:
        low = high = None
    else:
        low, high = (float(v) for v in np.quantile(values, [alpha, 1 - alpha]))
    return Interval(
        metric=metric,
        estimate=None if np.isnan(estimate) else estimate,
        low=low,
        high=high,
        level=level,
        method="image-cluster bootstrap (percentile)",
        n_boot=n_boot,
        n_clusters=n_clusters,
        seed=seed,
    )
