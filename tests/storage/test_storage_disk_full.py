"""A full disk: writes fail naming the file and the free space, leave no partial or temporary file,
and the run is still closed as failed (from space it set aside); when even that cannot be written,
the next start closes the dead attempt with the reason it left. Runs on a small tmpfs (root only)."""

from __future__ import annotations

import logging
import os
from base64 import b64encode
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from storage_fixtures import MODEL_A, answer, record

from storage import store as store_module
from storage.store import Store
from storage.writer import DiskFullError
from tests.support.disk import fill_disk, small_tmpfs


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 4 MiB tmpfs mounted for the test (needs root and mount permission; skipped otherwise)."""
    with small_tmpfs(tmp_path / "disk", "4m") as mount:
        yield mount


def rows(n: int, start: int = 0) -> list[dict]:
    # random text does not compress: each row costs ~3 KB on disk
    noise = [b64encode(os.urandom(3000)).decode() for _ in range(n)]
    return [
        {**answer(f"s{i}", "star", "no", "no", "no", f"img{i}"), "answer_text": text}
        for i, text in zip(range(start, start + n), noise, strict=True)
    ]


def fill_until_full(store: Store, run_id: str) -> DiskFullError:
    for k in range(10_000):
        try:
            store.write("answers", rows(100, 100 * k), run_id)
        except DiskFullError as exc:
            return exc
    raise AssertionError("the disk never filled")


def no_partial_files(root: Path) -> None:
    assert not [p for p in root.rglob(".*.tmp")]
    for part in root.rglob("*.parquet"):
        pq.read_metadata(part)  # every visible file is whole


def test_a_full_disk_fails_the_write_and_the_run_is_still_closed_failed(small_disk):
    store = Store(small_disk / "store")
    run_id = store.begin_run(record(MODEL_A, 1, "r1"))
    exc = fill_until_full(store, run_id)
    message = str(exc)
    assert message.startswith(f"no space left on the disk of {small_disk / 'store' / 'answers'}")
    assert " free of 4.0 MiB)" in message and exc.filename.endswith(".parquet")
    no_partial_files(small_disk / "store")

    store.finish_run(run_id, "failed", error=f"DiskFullError: {exc}")  # the reserve makes room
    assert store.run_status(run_id) == "failed"
    error = store.query("SELECT error FROM runs WHERE run_id = 'r1'").column(0)[0].as_py()
    assert error.startswith("DiskFullError: no space left on the disk of")
    assert not (small_disk / "store" / "_locks" / "run-r1.reserve").exists()
    store.close()


def test_when_even_the_status_cannot_be_written_the_next_start_says_why(small_disk, monkeypatch, caplog):
    monkeypatch.setattr(store_module, "_RESERVE_BYTES", store_module._LAST_WORDS_BYTES)  # nothing to free
    root = small_disk / "store"
    store = Store(root)
    run_id = store.begin_run(record(MODEL_A, 1, "r1"))
    exc = fill_until_full(store, run_id)
    fill_disk(small_disk)
    with pytest.raises(DiskFullError):
        store.finish_run(run_id, "failed", error=f"DiskFullError: {exc}")
    store.close()  # the process ends: the OS releases its lock on the run
    assert Store(root).run_status(run_id) == "running"  # nothing closed it
    no_partial_files(root)

    (small_disk / "filler").unlink()  # the operator frees space
    next(root.glob("answers/*/*/part-*.parquet")).unlink()
    with caplog.at_level(logging.WARNING, logger="storage.store"):
        again = Store(root)
        again.begin_run(record(MODEL_A, 1, "r1"))
    (warning,) = [r.getMessage() for r in caplog.records if "previous attempt" in r.getMessage()]
    assert f"(pid {os.getpid()} on " in warning
    assert "died without closing the run: DiskFullError: no space left on the disk of" in warning
    assert "then closing the run failed: no space left" in warning
    events = again.query(
        "SELECT status, error FROM run_events WHERE run_id = 'r1' ORDER BY event_at"
    ).to_pylist()
    assert [e["status"] for e in events] == ["running", "failed", "running"]
    assert events[1]["error"] == warning.split(": ", 1)[1]
    assert again.query("SELECT status, attempts FROM runs").to_pylist() == [
        {"status": "running", "attempts": 2}
    ]
    again.finish_run(run_id, "complete")


def test_an_attempt_that_died_without_a_reason_is_reported_too(tmp_path, caplog):
    store = Store(tmp_path / "s")
    store.begin_run(record(MODEL_A, 1, "r1"))
    store.write("answers", rows(2), "r1")
    store.close()  # as if killed: no closing event, no last words
    with caplog.at_level(logging.WARNING, logger="storage.store"):
        Store(tmp_path / "s").begin_run(record(MODEL_A, 1, "r1"))
    assert any(
        "died without closing the run: no reason was recorded: it was killed or crashed" in r.getMessage()
        for r in caplog.records
    )
