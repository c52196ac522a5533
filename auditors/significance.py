"""Is a change between two runs real? Paired tests for two runs answering the same questions.

- `paired_bootstrap`: both runs resampled with the *same* draw of shared images (cluster bootstrap:
  images with replacement, all of an image's questions kept), so the interval of the difference
  accounts for the pairing (the same hard questions in both runs) and for questions about one image
  being correlated. Percentile intervals; seeded, so the same inputs give the same interval.
- `mcnemar_exact`: the exact McNemar test on paired verdicts. Of the discordant questions (one run
  right, the other wrong), under "no difference" each is equally likely to go either way, so the
  count of new errors is Binomial(b + c, 1/2). Questions are taken as independent here; the
  bootstrap is the test that respects clustering by image, and the release gate uses it.

Both take counts, not rows: `auditors.scoring.outcome_counts` turns per-question outcomes into the
(images, 5) count matrices, and `paired_outcome_counts` aligns two runs' questions first.

Example::

    >>> mcnemar_exact(new_errors=7, fixed=1).p_two_sided
    0.0703125
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from auditors.scoring import OUTCOME_COLUMNS, bootstrap_weights, metric_values

BOOTSTRAP_METHOD = "paired image-cluster bootstrap (percentile)"


def binomial_tail(k: int, n: int) -> float:
    """P(X >= k) for X ~ Binomial(n, 1/2), exactly (integer arithmetic, one rounding at the end)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    term = total = math.comb(n, k)  # C(n, i) for i = k..n, each from the last: C(n, i+1) = C(n, i)(n-i)/(i+1)
    for i in range(k, n):
        term = term * (n - i) // (i + 1)
        total += term
    return total / 2**n


@dataclass(frozen=True, kw_only=True, slots=True)
class McNemar:
    """Exact McNemar test of paired right/wrong verdicts of a baseline and a candidate."""

    new_errors: int  # baseline right, candidate wrong ("b")
    fixed: int  # baseline wrong, candidate right ("c")
    p_two_sided: float  # min(1, 2 P(X <= min(b, c))), X ~ Bin(b + c, 1/2); scipy's binomtest agrees
    p_worse: float  # one-sided: P(X >= b), evidence that the candidate makes more errors
    p_better: float  # one-sided: P(X >= c)

    @property
    def discordant(self) -> int:
        return self.new_errors + self.fixed

    def to_dict(self) -> dict[str, float | int]:
        return {
            "new_errors": self.new_errors,
            "fixed": self.fixed,
            "p_two_sided": self.p_two_sided,
            "p_worse": self.p_worse,
            "p_better": self.p_better,
        }


def mcnemar_exact(*, new_errors: int, fixed: int) -> McNemar:
    """The exact (binomial) McNemar test on `new_errors` (b) and `fixed` (c) discordant pairs."""
    if new_errors < 0 or fixed < 0:
        raise ValueError(f"counts must be >= 0, got new_errors={new_errors} fixed={fixed}")
    n = new_errors + fixed
    low = min(new_errors, fixed)
    two_sided = 1.0 if n == 0 else min(1.0, 2 * binomial_tail(n - low, n))  # P(X <= low) by symmetry
    return McNemar(
        new_errors=new_errors,
        fixed=fixed,
        p_two_sided=two_sided,
        p_worse=binomial_tail(new_errors, n),
        p_better=binomial_tail(fixed, n),
    )


@dataclass(frozen=True, kw_only=True)
class PairedDifference:
    """candidate − baseline of one statistic, with a paired bootstrap interval.

    `low`/`high` bound a two-sided `level` percentile interval (None when the statistic is undefined
    in either run). `bound()` gives one-sided bounds at any level from the same replicates.
    """

    metric: str
    baseline: float | None
    candidate: float | None
    difference: float | None
    low: float | None
    high: float | None
    level: float
    n_boot: int  # replicates drawn
    n_valid: int  # replicates where the statistic was defined in both runs
    n_clusters: int  # shared images resampled
    seed: int
    method: str = BOOTSTRAP_METHOD
    replicates: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False, compare=False)

    @property
    def identical(self) -> bool:
        """No replicate differs: the two runs agree on every resampled question."""
        return self.difference == 0 and self.low == 0 and self.high == 0

    @property
    def covers_zero(self) -> bool:
        """True when the interval contains 0 (or is undefined): the change is within noise."""
        return self.low is None or self.high is None or self.low <= 0 <= self.high

    def bound(self, side: str, alpha: float) -> float | None:
        """One-sided (1 − alpha) bound of the difference: side "lower" (the difference is at least
        this with confidence 1 − alpha) or "upper" (at most this)."""
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {alpha}")
        if self.replicates.size == 0:
            return None
        if side == "lower":
            return float(np.quantile(self.replicates, alpha))
        if side == "upper":
            return float(np.quantile(self.replicates, 1 - alpha))
        raise ValueError(f"side must be 'lower' or 'upper', got {side!r}")

    def share_at_most(self, value: float) -> float | None:
        """Share of replicates with difference <= value (a one-sided bootstrap p-value for
        "the difference exceeds value")."""
        return None if self.replicates.size == 0 else float(np.mean(self.replicates <= value))

    def to_dict(self) -> dict[str, object]:
        return {
            "metric": self.metric,
            "baseline": self.baseline,
            "candidate": self.candidate,
            "difference": self.difference,
            "low": self.low,
            "high": self.high,
            "level": self.level,
            "n_boot": self.n_boot,
            "n_valid": self.n_valid,
            "n_clusters": self.n_clusters,
            "seed": self.seed,
            "method": self.method,
        }


Statistic = Callable[
    [np.ndarray], np.ndarray
]  # (..., K) summed cluster columns -> (...) values, NaN undefined


def paired_bootstrap(
    baseline: np.ndarray,
    candidate: np.ndarray,
    statistics: Mapping[str, Statistic],
    *,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, PairedDifference]:
    """Paired cluster bootstrap of candidate − baseline for each statistic.

    `baseline` and `candidate` are (G, K) per-image column sums over the same G shared images, in
    the same row order (e.g. outcome counts, or [sum of correction areas, explanations]). Each
    replicate draws G images with replacement (`bootstrap_weights`) and applies the draw to both
    runs, then evaluates every statistic on the (K,) sums. Replicates where a statistic is
    undefined in either run are dropped (`n_valid` says how many were kept).
    """
    baseline = np.asarray(baseline)
    candidate = np.asarray(candidate)
    if baseline.shape != candidate.shape or baseline.ndim != 2:
        raise ValueError(
            f"baseline {baseline.shape} and candidate {candidate.shape} must be (images, columns) of one "
            "shape: align both runs on the shared images first"
        )
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    weights = bootstrap_weights(baseline.shape[0], n_boot, seed)  # (n_boot, G), one draw for both runs
    boot_a, boot_b = weights @ baseline, weights @ candidate  # (n_boot, K) each
    total_a, total_b = baseline.sum(axis=0), candidate.sum(axis=0)
    alpha = (1 - level) / 2
    out: dict[str, PairedDifference] = {}
    for name, statistic in statistics.items():
        a, b = _defined(statistic(total_a)), _defined(statistic(total_b))
        d = statistic(boot_b) - statistic(boot_a)
        d = d[~np.isnan(d)]
        if a is None or b is None or d.size == 0:
            low = high = diff = None
            d = np.zeros(0)
        else:
            diff = b - a
            low, high = (float(v) for v in np.quantile(d, [alpha, 1 - alpha]))
        out[name] = PairedDifference(
            metric=name,
            baseline=a,
            candidate=b,
            difference=diff,
            low=low,
            high=high,
            level=level,
            n_boot=n_boot,
            n_valid=int(d.size),
            n_clusters=int(baseline.shape[0]),
            seed=seed,
            replicates=d,
        )
    return out


def _defined(value: np.ndarray) -> float | None:
    v = float(value)
    return None if math.isnan(v) else v


def rate_statistics(metrics: Sequence[str]) -> dict[str, Statistic]:
    """Statistics over (..., 5) outcome counts for `paired_bootstrap`: the confusion rates of
    `auditors.scoring.metric_values` (precision, f1, hallucination_rate, unparsed_share, ...)."""
    return {m: (lambda counts, m=m: metric_values(counts, m)) for m in metrics}


def mean_statistic(counts: np.ndarray) -> np.ndarray:
    """Mean from [sum, count] columns (e.g. AMCR from summed correction areas), NaN without counts."""
    total, n = counts[..., 0].astype(np.float64), counts[..., 1].astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / np.where(n > 0, n, 1), np.nan)


@dataclass(frozen=True, kw_only=True, slots=True)
class PairedQuestion:
    """One question answered by both runs: its image (the cluster) and the two outcomes."""

    key: str  # e.g. the sample id
    image: str
    baseline: str  # tp / fp / tn / fn / unparsed
    candidate: str


def paired_outcome_counts(questions: Sequence[PairedQuestion]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(images, baseline (G, 5), candidate (G, 5)) outcome counts per shared image, images sorted."""
    images = sorted({q.image for q in questions})
    row = {image: i for i, image in enumerate(images)}
    a = np.zeros((len(images), len(OUTCOME_COLUMNS)), np.int64)
    b = np.zeros_like(a)
    for q in questions:
        a[row[q.image], OUTCOME_COLUMNS.index(q.baseline)] += 1
        b[row[q.image], OUTCOME_COLUMNS.index(q.candidate)] += 1
    return images, a, b


def correct(outcome: str) -> bool:
    """A verdict that agrees with its label (unparsed answers are not correct)."""
    return outcome in ("tp", "tn")


def paired_rate_differences(
    questions: Sequence[PairedQuestion],
    metrics: Sequence[str],
    *,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, PairedDifference]:
    """candidate − baseline of each rate over one group of paired questions, paired bootstrap by image."""
    _, a, b = paired_outcome_counts(questions)
    return paired_bootstrap(a, b, rate_statistics(metrics), n_boot=n_boot, level=level, seed=seed)


def paired_mcnemar(questions: Sequence[PairedQuestion]) -> McNemar:
    """The exact McNemar test of paired right/wrong verdicts (unparsed answers count as wrong)."""
    new = sum(correct(q.baseline) and not correct(q.candidate) for q in questions)
    fixed = sum(not correct(q.baseline) and correct(q.candidate) for q in questions)
    return mcnemar_exact(new_errors=new, fixed=fixed)


__all__ = [
    "BOOTSTRAP_METHOD",
    "McNemar",
    "PairedDifference",
    "PairedQuestion",
    "binomial_tail",
    "correct",
    "mcnemar_exact",
    "mean_statistic",
    "paired_bootstrap",
    "paired_mcnemar",
    "paired_outcome_counts",
    "paired_rate_differences",
    "rate_statistics",
]
