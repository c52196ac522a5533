"""captum methods on EAGLE's regions at a budget, and the hard-suite comparison's plumbing and
statistics, on fake scorers (no model)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from probe_fakes import ColourProbe

from probe.captum_methods import CAPTUM_METHODS, captum_explain
from probe.compare import CompareConfig, check_methods, compare, paired_bootstrap, parse_method

sys.path.insert(0, str(Path(__file__).parents[1] / "eagle"))
from eagle_fakes import LinearScorer, grid_labels, region_image, request  # noqa: E402

pytest.importorskip("captum")


@pytest.fixture(scope="module")
def additive():
    labels = grid_labels(6, 6, cell=8)
    weights = np.random.default_rng(2).permutation(np.arange(1, 37, dtype=float))
    return labels, weights, LinearScorer(labels, weights)


@pytest.mark.parametrize("method", CAPTUM_METHODS)
def test_captum_methods_spend_the_budget_and_rank_an_additive_scorer(method, additive):
    labels, weights, scorer = additive
    expl = captum_explain(method, scorer, region_image(labels), labels, request(), budget=300, seed=1)
    n = 36
    ranking = expl.params["ranking_forward_passes"]
    assert expl.forward_passes == ranking + 2 * (n + 1)
    expected = {
        "feature_ablation": n + 1,
        "shapley_sampling": ((300 - 2 * (n + 1) - 1) // n) * n + 1,
        "kernel_shap": 300 - 2 * (n + 1),
        "lime": 300 - 2 * (n + 1),
    }
    if method in expected:
        assert ranking == expected[method]
    top = set(np.argsort(-weights)[:6].tolist())
    if method != "occlusion":  # occlusion's windows straddle regions: only most of the top
        assert set(expl.order[:6].tolist()) == top, method
    else:
        assert len(set(expl.order[:6].tolist()) & set(np.argsort(-weights)[:12].tolist())) >= 4


def test_captum_budget_too_small_and_unknown_method_are_named(additive):
    labels, _, scorer = additive
    with pytest.raises(ValueError, match="leaves no kernel_shap samples"):
        captum_explain("kernel_shap", scorer, region_image(labels), labels, request(), budget=60)
    with pytest.raises(ValueError, match="unknown captum method 'gradcam'"):
        captum_explain("gradcam", scorer, region_image(labels), labels, request(), budget=500)


def test_method_names_parse_and_budgets_need_their_search():
    assert parse_method("kernel_shap@exact") == ("kernel_shap", "exact")
    assert parse_method("rise@416") == ("rise", 416)
    assert parse_method("occlusion") == ("occlusion", None)
    with pytest.raises(ValueError, match="unknown method 'lime'"):
        parse_method("lime")
    with pytest.raises(ValueError, match="add eagle-lazy"):
        check_methods(["eagle-exact", "lime@lazy"])


def test_paired_bootstrap_covers_the_mean_and_excludes_zero_only_for_a_real_shift():
    rng = np.random.default_rng(0)
    shifted = paired_bootstrap(0.05 + rng.normal(0, 0.02, 40))
    assert shifted["ci95"][0] > 0 and shifted["ci95"][0] < shifted["mean"] < shifted["ci95"][1]
    null = paired_bootstrap(rng.normal(0, 0.02, 40))
    assert null["ci95"][0] < 0 < null["ci95"][1]
    assert paired_bootstrap(np.array([]))["n"] == 0


@pytest.mark.slow
def test_compare_runs_every_method_on_the_same_samples():
    methods = ("eagle-exact", "eagle-lazy", "lime@lazy", "rise@lazy", "feature_ablation", "random")
    cfg = CompareConfig(seed=5, n=2, n_hallucinations=1, regions=25, methods=methods, bootstrap=200)
    out = compare(ColourProbe(), cfg)
    rows = out["rows"]
    samples = {m: [r["sample"] for r in rows if r["method"] == m] for m in methods}
    assert all(s == samples["eagle-exact"] for s in samples.values())
    assert out["means"]["eagle-exact"]["n_object"] == 2
    assert out["means"]["eagle-exact"]["n_hallucination"] == 1
    by = {(r["sample"], r["method"]): r for r in rows}
    for s in samples["eagle-exact"]:  # a budgeted method spends what its search spent on that sample
        assert by[(s, "lime@lazy")]["forward_passes"] == by[(s, "eagle-lazy")]["forward_passes"]
        assert by[(s, "rise@lazy")]["forward_passes"] == by[(s, "eagle-lazy")]["forward_passes"]
    exact, rand = out["means"]["eagle-exact"], out["means"]["random"]
    assert exact["insertion_auc"] > rand["insertion_auc"] and exact["deletion_auc"] < rand["deletion_auc"]
    for row in out["means"].values():
        assert row["cause_hit"] in (0.0, 1.0) and 0 <= row["amcr"] <= 1 and row["csr10"] in (0.0, 1.0)
    d = out["differences"]["eagle-exact - random"]
    assert d["insertion_auc"]["n"] == 2 and d["insertion_auc"]["mean"] > 0  # object samples only
    assert d["cause_hit"]["n"] == 1 and d["insertion_auc"]["ci95"][0] <= d["insertion_auc"]["mean"]
