"""Stores written by older schema versions (tests/storage/fixtures: real v2 files, and v1 made from
them) read through today's views: the label-set maps and POPE's columns are derived for old rows,
every example query answers, compaction keeps them, and a new run can be added to an old store."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from storage_fixtures import FIXTURES, answer, as_v1, record

from auditors.scoring import outcome
from storage.queries import EXAMPLES, run_named
from storage.schemas import METADATA_KEY, SCHEMA_VERSION
from storage.store import Store


@pytest.fixture(params=["v2-synthetic", "v2-audit", "v1-audit"])
def old_store(request, tmp_path: Path) -> Path:
    name = request.param.replace("v1-", "v2-")
    root = tmp_path / name
    shutil.copytree(FIXTURES / name, root)
    if request.param.startswith("v1"):
        as_v1(root)
    return root


def _raw_answers(root: Path) -> list[dict]:
    """The answers as the old files hold them, read with pyarrow (not through the views)."""
    rows = []
    for part in sorted((root / "answers").rglob("*.parquet")):
        assert pq.read_metadata(part).metadata[METADATA_KEY] in (b"1", b"2")
        rows += pq.read_table(part).to_pylist()
    return rows


def test_old_rows_get_label_maps_and_the_pope_columns(old_store: Path) -> None:
    raw = {(r["run_id"], r["sample_id"]): r for r in _raw_answers(old_store)}
    assert raw and all("pope_label" in r and "labels" not in r for r in raw.values())
    con = Store(old_store, create=False).connect()
    got = con.sql(
        "SELECT run_id, sample_id, labels, outcomes, pope_label, repope_label, pope_outcome, repope_outcome"
        " FROM answers"
    ).fetchall()
    assert len(got) == len(raw)
    for run_id, sample_id, labels, outcomes, pope, repope, pope_o, repope_o in got:
        r = raw[(run_id, sample_id)]
        assert (pope, repope) == (r["pope_label"], r["repope_label"])
        want = {ls: r[f"{ls}_label"] for ls in ("pope", "repope") if r[f"{ls}_label"] is not None}
        assert labels == want
        for ls, o in (("pope", pope_o), ("repope", repope_o)):
            label = r[f"{ls}_label"]
            expected = None if label is None or r["verdict"] is None else outcome(label, r["verdict"])
            assert o == (expected if expected in (None, "unparsed") else expected.upper())
            assert outcomes.get(ls) == o
    n_labels = sum(len(v) for v in (row[2] for row in got))
    assert con.execute("SELECT count(*) FROM answer_labels").fetchone()[0] == n_labels


def _every_example(root: Path) -> dict[str, list[dict]]:
    con = Store(root, create=False).connect()
    run = con.execute("SELECT run_id FROM runs ORDER BY started_at, run_id LIMIT 1").fetchall()[0][0]
    out = {}
    for name, query in EXAMPLES.items():
        params = {"run_id": run} if "run_id" in query.params and query.params["run_id"] is None else {}
        out[name] = run_named(con, query, **params).to_pylist()
    return out


def test_every_example_query_answers_and_compaction_keeps_the_answers(old_store: Path) -> None:
    before = _every_example(old_store)
    assert before["run_overview"] and before["unparsed_answers"]
    assert before["hallucination_rate_by_class_and_night"]
    assert (
        before["hallucination_causes"] == [] and before["caption_hallucinations"] == []
    )  # no masks, no captions
    if old_store.name == "v2-audit":
        (run,) = before["run_overview"]
        assert (run["answers"], run["marks"], run["explanations"]) == (234, 8, 4)
        assert len(before["regions_driving_hallucinations"]) == 2  # the two explained false positives
    result = Store(old_store).compact(grace_s=0.0)
    assert result.files_written > 0 and result.files_deleted > 0
    assert _every_example(old_store) == before


def test_a_new_run_in_an_old_store_reads_beside_the_old_ones(tmp_path: Path) -> None:
    root = tmp_path / "store"
    shutil.copytree(FIXTURES / "v2-synthetic", root)
    store = Store(root)
    store.begin_run(record("org/model-a", 4, "a4"))
    store.write("answers", [answer("s1", "star", "yes", "no", "no", "img1")], "a4")
    store.finish_run("a4", "complete")
    part = next((root / "answers").rglob("part-a4-*.parquet"))
    assert pq.read_metadata(part).metadata[METADATA_KEY] == str(SCHEMA_VERSION).encode()
    con = store.connect()
    got = con.sql(
        "SELECT run_id, labels, repope_outcome FROM answers WHERE sample_id = 's1' AND run_id IN ('a1', 'a4')"
        " ORDER BY run_id"
    ).fetchall()
    assert got == [("a1", {"pope": "no", "repope": "no"}, "FP"), ("a4", {"pope": "no", "repope": "no"}, "FP")]
    rates = run_named(con, EXAMPLES["hallucination_rate_by_class_and_night"], model="org/model-a").to_pylist()
    assert [r["night"].day for r in rates if r["object_class"] == "star"] == [1, 2, 4]
