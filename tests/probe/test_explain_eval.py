"""explain-eval plumbing on a fake probe model that answers from colours it can see
(probe_fakes.ColourProbe)."""

from __future__ import annotations

import pytest
from probe_fakes import ColourProbe

from eagle.search import EfficientSearch
from eagle.types import Backend
from probe.explain_eval import METHODS, EvalConfig, evaluate

pytestmark = pytest.mark.slow  # ~15 s: a full evaluation run on 128x128 scenes


@pytest.fixture(scope="module")
def result():
    fake = ColourProbe()
    assert isinstance(fake, Backend)
    cfg = EvalConfig(seed=3, n=4, regions=36, rise_masks=64, search=EfficientSearch(), max_scan=60)
    return evaluate(fake, cfg)


def test_output_shape_and_counts(result):
    assert set(result["methods"]) == set(METHODS)
    assert result["n"] == 4 and result["seed"] == 3 and result["n_object_samples"] == 4
    for row in result["methods"].values():
        for key in (
            "insertion_auc",
            "deletion_auc",
            "point_game_box",
            "point_game_mask",
            "forward_passes",
            "amcr",
            "csr10",
            "cause_hit_rate",
            "n_hallucinations",
        ):
            assert key in row
        assert row["n_hallucinations"] == result["methods"]["eagle"]["n_hallucinations"] > 0
        assert 0 <= row["csr10"] <= 1 and 0 <= row["amcr"] <= 1
        by_pair = row["cause_hit_rate_by_pair"]
        assert sum(v["n"] for v in by_pair.values()) == row["n_hallucinations"]
        assert set(by_pair) <= {"moon->star", "arrow->ring"}
        assert sum(v["n"] for v in row["point_game_box_by_class"].values()) == row["n_samples"]


def test_eagle_finds_the_evidence_and_the_planted_cause(result):
    eagle, rand = result["methods"]["eagle"], result["methods"]["random"]
    assert eagle["point_game_box"] >= 0.75 > rand["point_game_box"]
    assert eagle["insertion_auc"] > rand["insertion_auc"] and eagle["deletion_auc"] < rand["deletion_auc"]
    assert eagle["cause_hit_rate"] >= 0.75
    assert eagle["amcr"] < rand["amcr"]
