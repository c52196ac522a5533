"""Each documented example query on the synthetic store (tests/storage/conftest.py) returns the
hand-computed rows."""

from __future__ import annotations

import datetime as dt

import pytest

from storage.queries import EXAMPLES, get_example, run_named
from storage.store import Store

D = dt.date


def rows(store_dir, name, **params):
    con = Store(store_dir, create=False).connect()
    return run_named(con, EXAMPLES[name], **params).to_pylist()


def test_hallucination_rate_by_class_and_night_repope(query_store):
    got = rows(query_store, "hallucination_rate_by_class_and_night", model="org/model-a")
    assert [
        (r["night"], r["object_class"], r["negatives"], r["hallucinations"], r["hallucination_rate"])
        for r in got
    ] == [
        (D(2025, 1, 1), "moon", 2, 0, 0.0),  # s4 TN, s5 unparsed counts as a negative
        (D(2025, 1, 1), "star", 3, 2, 0.6667),  # s1 FP, s6 FP under RePOPE, s2 TN
        (D(2025, 1, 2), "moon", 1, 0, 0.0),  # s7 removed by RePOPE
        (D(2025, 1, 2), "star", 2, 2, 1.0),
    ]  # the failed run a3 (night 3) is left out


def test_hallucination_rate_pope_labels_and_all_models(query_store):
    got = rows(query_store, "hallucination_rate_by_class_and_night", label_set="pope")
    table = {(r["model_id"], r["night"], r["object_class"]): r["hallucination_rate"] for r in got}
    assert table[("org/model-a", D(2025, 1, 2), "moon")] == 0.5  # s7 is a POPE false positive
    assert table[("org/model-a", D(2025, 1, 1), "star")] == 0.5  # s6 is a POPE true positive
    assert table[("model b", D(2025, 1, 2), "star")] == 0.0


def test_nights_model_got_worse(query_store):
    got = rows(query_store, "nights_model_got_worse")
    assert [(r["model_id"], r["previous_night"], r["night"], r["change"]) for r in got] == [
        ("org/model-a", D(2025, 1, 1), D(2025, 1, 2), -0.2)  # a3 (0.1) failed and is not compared
    ]
    assert rows(query_store, "nights_model_got_worse", min_drop=0.25) == []


def test_regions_driving_hallucinations(query_store):
    got = rows(query_store, "regions_driving_hallucinations")
    assert [(r["image"], r["region"], r["hallucinations"], r["runs"], r["object_classes"]) for r in got] == [
        ("img1", 3, 2, 2, ["star"]),  # last region of s1's order in both nights
        ("img2", 0, 1, 1, ["star"]),  # s2 only hallucinated in night 2; night 1 (TN) is ignored
    ]
    two = rows(query_store, "regions_driving_hallucinations", k=2, limit=2)
    assert [(r["image"], r["region"]) for r in two] == [("img1", 3), ("img1", 1)]


def test_verdict_changes(query_store):
    got = rows(query_store, "verdict_changes", run_id="a1")
    assert [(r["sample_id"], r["pope_outcome"], r["repope_outcome"]) for r in got] == [("s6", "TP", "FP")]
    got = rows(query_store, "verdict_changes", run_id="a2")
    assert [(r["sample_id"], r["pope_outcome"], r["repope_outcome"]) for r in got] == [("s7", "FP", None)]


def test_unparsed_answers(query_store):
    got = {r["run_id"]: r for r in rows(query_store, "unparsed_answers")}
    assert (got["a1"]["answers"], got["a1"]["unparsed"], got["a1"]["examples"]) == (6, 1, ["Maybe?"])
    assert got["a2"]["unparsed"] == 0


def test_run_overview(query_store):
    got = rows(query_store, "run_overview")
    assert [(r["run_id"], r["status"], r["answers"], r["marks"], r["explanations"]) for r in got] == [
        ("a1", "complete", 6, 2, 2),
        ("a2", "complete", 4, 0, 2),
        ("b1", "complete", 1, 0, 0),  # same start as a2: ordered by run id
        ("a3", "failed", 1, 0, 0),
    ]


def test_every_example_is_read_only_and_documented():
    for query in EXAMPLES.values():
        assert query.description.endswith(".")
        from storage.sql import check_read_only

        assert len(check_read_only(query.sql)) == 1


def test_unknown_example_and_parameter_suggest_fixes():
    with pytest.raises(KeyError, match="Did you mean: nights_model_got_worse"):
        get_example("nights_model_got_wrose")
    with pytest.raises(
        ValueError, match="has no parameter\\(s\\) \\['night'\\]; it takes: label_set, split, min_drop"
    ):
        EXAMPLES["nights_model_got_worse"].bind(night="x")
