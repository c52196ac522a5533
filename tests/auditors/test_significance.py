"""The paired tests of auditors.significance against references: McNemar's exact test against scipy's
binomial test, the paired bootstrap against the exact distribution of its own resampling (enumerated
for a few images), and the properties that make it a *paired* test."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.stats import binom, binomtest, multinomial

from auditors.scoring import metric_values
from auditors.significance import (
    PairedQuestion,
    binomial_tail,
    mcnemar_exact,
    paired_bootstrap,
    paired_mcnemar,
    paired_outcome_counts,
    paired_rate_differences,
    rate_statistics,
)

TABLE = [
    (0, 0),
    (1, 0),
    (0, 1),
    (3, 3),
    (7, 1),
    (1, 7),
    (10, 2),
    (0, 15),
    (40, 25),
    (25, 40),
    (200, 170),
    (1000, 1090),
]


@pytest.mark.parametrize(("new", "fixed"), TABLE)
def test_mcnemar_equals_scipy_exact_binomial_test(new: int, fixed: int) -> None:
    m = mcnemar_exact(new_errors=new, fixed=fixed)
    n = new + fixed
    if n == 0:
        assert (m.p_two_sided, m.p_worse, m.p_better) == (1.0, 1.0, 1.0)
        return
    assert m.p_two_sided == pytest.approx(binomtest(new, n, 0.5).pvalue, rel=1e-9, abs=1e-300)
    assert m.p_worse == pytest.approx(
        binomtest(new, n, 0.5, alternative="greater").pvalue, rel=1e-9, abs=1e-300
    )
    assert m.p_better == pytest.approx(
        binomtest(fixed, n, 0.5, alternative="greater").pvalue, rel=1e-9, abs=1e-300
    )


def test_mcnemar_by_hand() -> None:
    # 7 new errors against 1 fix: P(X <= 1) for X ~ Bin(8, 1/2) is 9/256; two-sided doubles it
    m = mcnemar_exact(new_errors=7, fixed=1)
    assert m.p_two_sided == 18 / 256
    assert m.p_worse == 9 / 256 and m.p_better == 1 - 1 / 256
    with pytest.raises(ValueError, match="counts must be >= 0"):
        mcnemar_exact(new_errors=-1, fixed=2)


def test_binomial_tail_is_exact_where_floats_would_underflow() -> None:
    for n in (1, 2, 17, 400, 3000):
        for k in (0, 1, n // 3, n // 2, n - 1, n, n + 1):
            assert binomial_tail(k, n) == pytest.approx(binom.sf(k - 1, n, 0.5), rel=1e-9, abs=1e-300)


def test_paired_mcnemar_counts_discordant_questions_and_unparsed_as_wrong() -> None:
    q = [
        PairedQuestion(key="1", image="a", baseline="tn", candidate="fp"),  # new error
        PairedQuestion(key="2", image="a", baseline="tp", candidate="unparsed"),  # new error
        PairedQuestion(key="3", image="b", baseline="fn", candidate="tp"),  # fixed
        PairedQuestion(key="4", image="b", baseline="fp", candidate="fp"),  # both wrong: not discordant
        PairedQuestion(key="5", image="c", baseline="tp", candidate="tp"),
    ]
    m = paired_mcnemar(q)
    assert (m.new_errors, m.fixed) == (2, 1)


def _exact_distribution(a: np.ndarray, b: np.ndarray, metric: str) -> dict[float, float]:
    """The exact distribution of the paired bootstrap difference: every multiset of G images drawn
    with replacement, with its multinomial probability."""
    g = len(a)
    out: dict[float, float] = {}
    for counts in itertools.product(range(g + 1), repeat=g):
        if sum(counts) != g:
            continue
        w = np.array(counts)
        d = float(metric_values(w @ b, metric) - metric_values(w @ a, metric))
        if math.isnan(d):
            continue
        p = float(multinomial.pmf(counts, g, [1 / g] * g))
        out[round(d, 12)] = out.get(round(d, 12), 0.0) + p
    return out


def test_paired_bootstrap_matches_the_exact_resampling_distribution() -> None:
    # three images; the candidate hallucinates on image 0 (twice) and image 1, fixes image 2
    baseline = [
        PairedQuestion(key="0a", image="i0", baseline="tn", candidate="fp"),
        PairedQuestion(key="0b", image="i0", baseline="tn", candidate="fp"),
        PairedQuestion(key="1a", image="i1", baseline="tn", candidate="fp"),
        PairedQuestion(key="1b", image="i1", baseline="tp", candidate="tp"),
        PairedQuestion(key="2a", image="i2", baseline="fp", candidate="tn"),
        PairedQuestion(key="2b", image="i2", baseline="tn", candidate="tn"),
    ]
    _, a, b = paired_outcome_counts(baseline)
    exact = _exact_distribution(a, b, "hallucination_rate")
    out = paired_rate_differences(baseline, ["hallucination_rate"], n_boot=40_000, seed=3)[
        "hallucination_rate"
    ]
    # point estimate by hand: baseline 1 FP of 5 negatives, candidate 3 of 5
    assert out.baseline == pytest.approx(1 / 5) and out.candidate == pytest.approx(3 / 5)
    assert out.difference == pytest.approx(2 / 5)
    assert out.n_valid == 40_000 and out.n_clusters == 3
    reps = np.round(out.replicates, 12)
    assert set(np.unique(reps)) <= set(exact)  # no value the exact resampling cannot produce
    for value, p in exact.items():
        assert np.mean(reps == value) == pytest.approx(p, abs=0.01), value
    # the percentile bounds are the exact distribution's quantiles
    support = sorted(exact)
    cdf = np.cumsum([exact[v] for v in support])
    assert out.low == support[int(np.searchsorted(cdf, 0.025))]
    assert out.high == support[int(np.searchsorted(cdf, 0.975))]


def test_one_resampling_draw_serves_both_runs() -> None:
    # Two images; the candidate adds one hallucination on image 0. Independent draws for the two
    # runs could give -1/2; a shared draw gives only 1 (image 0 twice, p = 1/4), 1/2 (both images,
    # p = 1/2) or 0 (image 1 twice, p = 1/4)
    a = np.array([[0, 0, 1, 0, 0], [0, 0, 1, 0, 0]])  # each image one TN
    b = np.array([[0, 1, 0, 0, 0], [0, 0, 1, 0, 0]])  # image 0 turns FP
    d = paired_bootstrap(a, b, rate_statistics(["hallucination_rate"]), n_boot=20_000, seed=1)[
        "hallucination_rate"
    ]
    values, counts = np.unique(d.replicates, return_counts=True)
    assert values.tolist() == [0.0, 0.5, 1.0]
    assert counts / counts.sum() == pytest.approx([0.25, 0.5, 0.25], abs=0.015)
    assert d.share_at_most(0.0) == pytest.approx(0.25, abs=0.015)
    assert d.bound("lower", 0.3) == 0.5 and d.bound("upper", 0.3) == 0.5
    assert (d.low, d.high) == (0.0, 1.0)


def test_identical_runs_differ_by_exactly_zero_and_the_seed_fixes_the_interval() -> None:
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 4, size=(30, 5))
    same = paired_bootstrap(counts, counts, rate_statistics(["f1", "accuracy"]), n_boot=500, seed=0)
    assert all(d.identical and not d.replicates.any() for d in same.values())
    other = counts.copy()
    other[:10, 1] += 1  # ten images gain a false positive
    one = paired_bootstrap(counts, other, rate_statistics(["f1"]), n_boot=500, seed=7)["f1"]
    two = paired_bootstrap(counts, other, rate_statistics(["f1"]), n_boot=500, seed=7)["f1"]
    three = paired_bootstrap(counts, other, rate_statistics(["f1"]), n_boot=500, seed=8)["f1"]
    assert (one.low, one.high) == (two.low, two.high) != (three.low, three.high)
    assert one.high < 0 and not one.covers_zero  # F1 only fell: every replicate is negative


def test_pairing_narrows_the_interval_when_both_runs_share_hard_images() -> None:
    # 60 images of very different difficulty; the candidate fixes nothing and breaks a few. Paired
    # resampling cancels the shared difficulty, resampling the runs independently does not.
    rng = np.random.default_rng(5)
    a = np.zeros((60, 5), np.int64)
    hard = rng.integers(0, 6, size=60)
    a[:, 1] = hard  # FP
    a[:, 2] = 6 - hard  # TN
    b = a.copy()
    flip = rng.choice(60, size=8, replace=False)
    b[flip, 1] += 1
    b[flip, 2] -= 1
    paired = paired_bootstrap(a, b, rate_statistics(["hallucination_rate"]), n_boot=2000, seed=0)[
        "hallucination_rate"
    ]
    stat = rate_statistics(["hallucination_rate"])["hallucination_rate"]
    from auditors.scoring import bootstrap_weights

    unpaired = stat(bootstrap_weights(60, 2000, 1) @ b) - stat(bootstrap_weights(60, 2000, 2) @ a)
    lo, hi = np.quantile(unpaired, [0.025, 0.975])
    assert paired.low > 0  # significant when paired
    assert lo < 0 < hi  # lost in the between-image spread when not
    assert (paired.high - paired.low) < 0.5 * (hi - lo)


def test_undefined_statistics_and_bad_shapes() -> None:
    only_positives = np.array([[1, 0, 0, 0, 0], [0, 0, 0, 1, 0]])  # no negatives: no hallucination rate
    d = paired_bootstrap(
        only_positives, only_positives, rate_statistics(["hallucination_rate", "recall"]), n_boot=200
    )
    assert d["hallucination_rate"].difference is None and d["hallucination_rate"].low is None
    assert d["hallucination_rate"].n_valid == 0 and d["hallucination_rate"].bound("lower", 0.05) is None
    assert d["recall"].difference == 0
    with pytest.raises(ValueError, match="one shape"):
        paired_bootstrap(only_positives, only_positives[:1], rate_statistics(["f1"]))
    with pytest.raises(ValueError, match="level"):
        paired_bootstrap(only_positives, only_positives, rate_statistics(["f1"]), level=1.0)
