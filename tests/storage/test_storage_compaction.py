"""Compaction merges the files of complete runs without a row ever showing twice or going missing."""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from storage_fixtures import MODEL_A, answer, record

from storage.store import Store, StoreBusyError

TABLES = ["run_records", "run_events", "answers", "marks", "explanations", "metrics"]


def snapshot(store: Store) -> dict[str, list[tuple]]:
    con = store.connect()
    return {t: sorted(map(repr, con.execute(f"SELECT * FROM {t}").fetchall())) for t in TABLES}


def data_files(root, table="answers"):
    return sorted(p.name for p in root.glob(f"{table}/*/*/*.parquet"))


def test_compaction_keeps_every_row_once(synthetic_store):
    store = Store(synthetic_store)
    before = snapshot(store)
    answers_before = data_files(synthetic_store)
    a1_parts = [n for n in answers_before if n.startswith("part-a1-")]
    assert len(a1_parts) == 2 and len(answers_before) == 5
    result = store.compact(grace_s=3600)
    assert snapshot(store) == before  # same rows, none twice, none lost
    assert result.files_written >= 4 and result.files_deleted == 0  # answers + run_events partitions
    # replaced parts stay on disk for the grace period, hidden by the views
    compacted = [n for n in data_files(synthetic_store) if n.startswith("cpart-")]
    assert len(compacted) == 1 and len(data_files(synthetic_store)) == 6
    night1 = synthetic_store / "answers" / "model=org--model-a" / "run_date=2025-01-01"
    lineage = pq.read_table(night1 / compacted[0], columns=["_origin", "_from"]).to_pylist()
    assert {r["_origin"] for r in lineage} == set(a1_parts)

    result = store.compact(grace_s=0)
    assert result.files_written == 0
    assert snapshot(store) == before
    left = data_files(synthetic_store)
    assert sorted(n.split("-")[0] + "-" + n.split("-")[1] for n in left if n.startswith("part-")) == [
        "part-a2",  # alone in its partition: nothing to merge with
        "part-a3",  # failed: may still be resumed, never compacted
        "part-b1",
    ]
    assert compacted[0] in left and not set(a1_parts) & set(left)


def test_compacting_again_merges_new_runs_and_earlier_compacted_files(synthetic_store):
    store = Store(synthetic_store)
    store.compact(grace_s=0)
    store.begin_run(record(MODEL_A, 1, "a1b"))  # a second run on night 1
    store.write("answers", [answer("s9", "moon", "no", "no", "no", "img9")], "a1b")
    store.finish_run("a1b", "complete")
    before = snapshot(store)
    result = store.compact(grace_s=3600)
    assert result.files_written >= 1
    assert snapshot(store) == before  # old compacted file hidden at once by the new one
    night1 = synthetic_store / "answers" / "model=org--model-a" / "run_date=2025-01-01"
    files = sorted(p.name for p in night1.iterdir())
    assert len([f for f in files if f.startswith("cpart-")]) == 2
    store.compact(grace_s=0)
    assert len([p for p in night1.iterdir()]) == 1
    assert snapshot(store) == before
    assert store.query("SELECT count(*) FROM answers WHERE run_id = 'a1'").column(0)[0].as_py() == 6


def test_running_runs_are_left_alone(tmp_path):
    store = Store(tmp_path / "s")
    store.begin_run(record(MODEL_A, 1, "r1"))
    for i in range(3):
        store.write("answers", [answer(f"s{i}", "star", "no", "no", "no", "i")], "r1")
    assert store.compact(grace_s=0).files_written == 0
    assert len(data_files(tmp_path / "s")) == 3
    store.write("answers", [answer("s9", "star", "no", "no", "no", "i")], "r1")  # still writable
    store.finish_run("r1", "complete")
    assert store.compact(grace_s=0).parts_merged >= 4
    assert data_files(tmp_path / "s")[0].startswith("cpart-") and len(data_files(tmp_path / "s")) == 1
    assert Store(tmp_path / "s").done_samples("r1") == {"s0", "s1", "s2", "s9"}


def test_only_one_compaction_at_a_time(synthetic_store):
    store = Store(synthetic_store)
    fd = store._flock("compact.lock")  # another compaction holds the lock
    try:
        with pytest.raises(StoreBusyError, match="another compaction of .* is running"):
            store.compact()
    finally:
        os.close(fd)
    store.compact()


def test_hidden_and_temporary_files_are_never_read(synthetic_store):
    store = Store(synthetic_store)
    before = snapshot(store)
    part_dir = next(synthetic_store.glob("answers/model=org--model-a/run_date=2025-01-01"))
    (part_dir / ".part-a1-deadbeef.parquet.1234abcd.tmp").write_bytes(b"PAR1 half a file")
    rows = pa.table(
        {"run_id": ["a1"], "sample_id": ["ghost"], "benchmark": ["pope"], "image": ["x"], "question": ["q"]}
    )
    pq.write_table(rows, part_dir / ".hidden.parquet")  # a complete file, but hidden
    assert snapshot(store) == before
    old = part_dir / ".part-a1-deadbeef.parquet.1234abcd.tmp"
    os.utime(old, (0, 0))
    result = store.compact(grace_s=3600, tmp_age_s=3600)
    assert result.tmp_removed == 1 and not old.exists()
