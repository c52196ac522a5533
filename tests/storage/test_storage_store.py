"""Store semantics: runs and their status, writes, keys, resume, maps, views on empty stores."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from storage_fixtures import MODEL_A, answer, build, record

from storage.layout import safe_model_name
from storage.schemas import SCHEMA_VERSION, SCHEMAS
from storage.store import RunRecord, RunStateError, Store, StoreBusyError, StoreNotFoundError

VIEWS = ["runs", "run_records", "run_events", "answers", "marks", "explanations", "metrics"]


def count(store: Store, sql: str, params=None) -> int:
    return store.query(sql, params).column(0)[0].as_py()


def test_views_of_an_empty_store_are_typed_and_empty(tmp_path):
    store = Store(tmp_path / "empty")
    con = store.connect()
    for view in VIEWS:
        assert con.execute(f"SELECT count(*) FROM {view}").fetchone() == (0,)
    described = {name: type_ for name, type_, *_ in con.execute("DESCRIBE answers").fetchall()}
    assert described["logprobs"] == "DOUBLE[]"
    assert described["run_date"] == "DATE"
    assert described["repope_outcome"] == "VARCHAR"
    assert {f.name for f in SCHEMAS["explanations"]} <= {
        r[0] for r in con.execute("DESCRIBE explanations").fetchall()
    }


def test_missing_store_is_an_error_when_not_creating(tmp_path):
    with pytest.raises(StoreNotFoundError, match="does not exist"):
        Store(tmp_path / "nope", create=False)
    assert not (tmp_path / "nope").exists()


def test_store_with_only_some_tables_is_queryable(tmp_path):
    store = Store(tmp_path / "s")
    run_id = store.begin_run(record(MODEL_A, 1, "r1"))
    store.write(
        "metrics",
        [{"benchmark": "pope", "split": "all", "label_set": "repope", "object_class": "all", "n": 3}],
        run_id,
    )
    assert not (tmp_path / "s" / "answers").exists()
    assert count(store, "SELECT count(*) FROM answers") == 0
    assert count(store, "SELECT count(*) FROM metrics") == 1
    assert store.query("SELECT status FROM runs").column(0).to_pylist() == ["running"]


def test_run_lifecycle_and_latest_status(tmp_path):
    store = Store(tmp_path / "s")
    run_id = store.begin_run(record(MODEL_A, 1, "r1"))
    store.write("answers", [answer("s1", "star", "yes", "no", "no", "i")], run_id)
    store.finish_run(run_id, "complete")
    row = store.query("SELECT * FROM runs").to_pylist(maps_as_pydicts="strict")[0]
    assert row["status"] == "complete" and row["attempts"] == 1 and row["error"] is None
    assert row["model_id"] == MODEL_A and row["model"] == safe_model_name(MODEL_A)
    assert row["run_date"] == dt.date(2025, 1, 1)
    assert row["data_checksums"] == {"coco_repope_random.json": "ab" * 32}
    assert row["finished_at"] is not None
    # closing never rewrote a file: two status events, one record
    assert count(store, "SELECT count(*) FROM run_events WHERE run_id = 'r1'") == 2
    with pytest.raises(RunStateError, match="only a running run accepts rows"):
        store.write("answers", [answer("s2", "star", "no", "no", "no", "i")], run_id)
    with pytest.raises(RunStateError, match="already complete"):
        store.begin_run(record(MODEL_A, 1, "r1"))
    with pytest.raises(RunStateError, match="already complete"):
        store.finish_run(run_id, "failed")


def test_open_run_records_failure_with_the_error(tmp_path):
    store = Store(tmp_path / "s")
    with pytest.raises(ZeroDivisionError), store.open_run(record(MODEL_A, 1, "r1")):
        1 / 0  # noqa: B018
    row = store.query("SELECT status, error FROM runs").to_pylist()[0]
    assert row == {"status": "failed", "error": "ZeroDivisionError: division by zero"}


def test_write_skips_stored_keys_and_refuses_repeated_keys(tmp_path):
    store = Store(tmp_path / "s")
    run_id = store.begin_run(record(MODEL_A, 1, "r1"))
    first = store.write("answers", [answer("s1", "star", "yes", "no", "no", "i")], run_id)
    again = store.write(
        "answers",
        [answer("s1", "star", "yes", "no", "no", "i"), answer("s2", "moon", "no", "no", "no", "j")],
        run_id,
    )
    assert (first.rows_written, again.rows_written, again.rows_skipped) == (1, 1, 1)
    assert store.write("answers", [answer("s2", "moon", "no", "no", "no", "j")], run_id).path is None
    with pytest.raises(ValueError, match="repeat the key {'sample_id': 's3'}"):
        store.write("answers", [answer("s3", "x", "no", "no", "no", "j")] * 2, run_id)
    assert store.done_keys(run_id, "answers") == {("s1",), ("s2",)}
    assert count(store, "SELECT count(*) FROM answers") == 2
    # a fresh Store (another process, or a resumed flow) sees the same keys from disk
    assert Store(tmp_path / "s").done_samples(run_id) == {"s1", "s2"}


def test_bad_rows_name_the_column_and_row(tmp_path):
    store = Store(tmp_path / "s")
    run_id = store.begin_run(record(MODEL_A, 1, "r1"))
    with pytest.raises(ValueError, match=r"row 0 for table 'answers' has unknown column\(s\) \['colour'\]"):
        store.write("answers", [{**answer("s1", "star", "yes", "no", "no", "i"), "colour": "red"}], run_id)
    with pytest.raises(ValueError, match="column 'image' of table 'answers' may not be null \\(row 1"):
        store.write(
            "answers",
            [
                answer("s1", "a", "no", "no", "no", "i"),
                {**answer("s2", "a", "no", "no", "no", "i"), "image": None},
            ],
            run_id,
        )
    with pytest.raises(
        ValueError,
        match="column 'question_id' of table 'answers' must be int64 \\(first bad value in row 0: 'seven'\\)",
    ):
        store.write("answers", [{**answer("s1", "a", "no", "no", "no", "i"), "question_id": "seven"}], run_id)
    with pytest.raises(ValueError, match="carry run id\\(s\\) \\['other'\\]"):
        store.write("answers", [{**answer("s1", "a", "no", "no", "no", "i"), "run_id": "other"}], run_id)
    with pytest.raises(ValueError, match="cannot write table 'runs' directly"):
        store.write("runs", [], run_id)
    with pytest.raises(RunStateError, match="run 'ghost' is not in"):
        store.write("answers", [answer("s1", "a", "no", "no", "no", "i")], "ghost")
    assert count(store, "SELECT count(*) FROM answers") == 0  # nothing half-written


def test_write_accepts_arrow_tables_and_casts_to_pinned_types(tmp_path):
    store = Store(tmp_path / "s")
    run_id = store.begin_run(record(MODEL_A, 1, "r1"))
    data = pa.table(
        {
            "sample_id": ["s1", "s2"],
            "token_index": pa.array([0, 3], pa.int64()),  # schema says int32
            "label_set": ["repope", "repope"],
            "kind": ["false_positive", "false_negative"],
        }
    )
    result = store.write("marks", data, run_id)
    stored = pq.read_table(result.path)
    assert stored.schema.field("token_index").type == pa.int32()
    assert stored.schema.metadata[b"eagle_audit.schema_version"] == str(SCHEMA_VERSION).encode()
    assert store.query("SELECT token_index FROM marks ORDER BY 1").column(0).to_pylist() == [0, 3]


def test_resume_a_failed_run(tmp_path):
    root = tmp_path / "s"
    store = Store(root)
    run_id = store.begin_run(record(MODEL_A, 1, "r1"))
    store.write("answers", [answer("s1", "star", "yes", "no", "no", "i")], run_id)
    store.finish_run(run_id, "failed", error="killed")
    store.close()

    again = Store(root)
    with pytest.raises(
        RunStateError, match="cannot resume run 'r1': its settings differ \\(seed: stored 0, now 1"
    ):
        again.begin_run(dataclasses.replace(record(MODEL_A, 1, "r1"), seed=1))
    assert again.begin_run(record(MODEL_A, 1, "r1")) == "r1"
    todo = [s for s in ("s1", "s2") if s not in again.done_samples("r1")]
    assert todo == ["s2"]
    again.write("answers", [answer("s2", "moon", "no", "no", "no", "i")], "r1")
    again.finish_run("r1", "complete")
    row = again.query("SELECT status, attempts, error FROM runs").to_pylist()[0]
    assert row == {"status": "complete", "attempts": 2, "error": None}
    assert again.query("SELECT sample_id FROM answers ORDER BY 1").column(0).to_pylist() == ["s1", "s2"]
    assert count(again, "SELECT count(*) FROM run_records") == 1


def test_a_run_being_written_cannot_be_begun_twice(tmp_path):
    first, second = Store(tmp_path / "s"), Store(tmp_path / "s")
    first.begin_run(record(MODEL_A, 1, "r1"))
    with pytest.raises(StoreBusyError, match="run 'r1' is being written by another process"):
        second.begin_run(record(MODEL_A, 1, "r1"))
    first.finish_run("r1", "failed")  # releases the lock: a crashed or failed run can be resumed
    assert second.begin_run(record(MODEL_A, 1, "r1")) == "r1"


def test_runs_of_different_models_and_days_are_partitioned(synthetic_store):
    parts = sorted(
        p.relative_to(synthetic_store).parts[:3] for p in synthetic_store.glob("answers/*/*/*.parquet")
    )
    assert ("answers", "model=org--model-a", "run_date=2025-01-01") in parts
    assert ("answers", f"model={safe_model_name('model b')}", "run_date=2025-01-02") in parts
    assert safe_model_name("model b").startswith("model_b-")


def test_maps_are_written_atomically_and_verified(tmp_path):
    store = Store(tmp_path / "s")
    run_id = store.begin_run(record(MODEL_A, 1, "r1"))
    heat = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    ref = store.write_map(run_id, "s1/pos0", heat)
    assert ref.path == "maps/r1/s1--pos0.npy"
    np.testing.assert_array_equal(store.read_map(ref.path, ref.sha256), heat)
    with pytest.raises(FileExistsError, match="never overwrites"):
        store.write_map(run_id, "s1/pos0", heat)
    with open(tmp_path / "s" / ref.path, "r+b") as f:
        f.seek(-4, os.SEEK_END)
        f.write(b"\x00\x00\x00\x00")
    with pytest.raises(ValueError, match="it changed"):
        store.read_map(ref.path, ref.sha256)
    with pytest.raises(ValueError, match="outside the store"):
        store.read_map("../elsewhere.npy")
    assert not list((tmp_path / "s").rglob("*.tmp"))


def test_record_needs_an_aware_time_and_a_safe_run_id():
    with pytest.raises(ValueError, match="timezone-aware"):
        RunRecord(model_id="m", backend="b", started_at=dt.datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="run id '../x' is not allowed"):
        RunRecord(model_id="m", backend="b", run_id="../x")
    assert RunRecord(model_id="m", backend="b").run_id


def test_build_is_deterministic_in_rows(tmp_path):
    runs = build(tmp_path / "x")
    assert runs == {"a1": "a1", "a2": "a2", "a3": "a3", "b1": "b1"}


def test_queries_retry_when_compaction_deletes_a_globbed_file():
    import duckdb

    from storage.store import _retry_vanished

    calls = []

    def flaky():
        calls.append(1)
        if len(calls) == 1:
            raise duckdb.IOException('IO Error: Cannot open file "x.parquet": No such file or directory')
        return 42

    assert _retry_vanished(flaky) == 42 and len(calls) == 2

    def broken():
        raise duckdb.IOException("IO Error: permission denied")

    with pytest.raises(duckdb.IOException, match="permission denied"):
        _retry_vanished(broken)
