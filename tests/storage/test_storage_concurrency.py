"""Several writer processes, compaction and queries on one store at the same time; a writer killed
mid-write leaves nothing half-written in sight, and its run resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from storage_fixtures import MODEL_A, record

from storage.store import Store

WORKER = Path(__file__).with_name("storage_worker.py")


def spawn(*args: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(WORKER), *args], env=env, stdout=subprocess.PIPE, text=True)


def test_two_audits_write_one_store_while_it_is_compacted_and_queried(synthetic_store):
    store = Store(synthetic_store)
    settled = (
        store.query("SELECT count(*) FROM answers WHERE run_id IN ('a1', 'a2', 'b1')").column(0)[0].as_py()
    )
    procs = [spawn("write", str(synthetic_store), run_id, "12", "50") for run_id in ("w1", "w2")]
    seen = 0
    while any(p.poll() is None for p in procs):
        # rows of complete runs never double or vanish while others write and compaction runs
        got = (
            store.query("SELECT count(*) FROM answers WHERE run_id IN ('a1', 'a2', 'b1')")
            .column(0)[0]
            .as_py()
        )
        assert got == settled
        if seen == 2:
            # grace 0 deletes replaced files at once, racing the writers' own queries (they retry)
            store.compact(grace_s=0)
        seen += 1
        time.sleep(0.05)
    assert [p.wait() for p in procs] == [0, 0]
    assert seen > 2, "the writers finished before compaction ran alongside them"
    got = store.query(
        "SELECT run_id, status, (SELECT count(*) FROM answers a WHERE a.run_id = r.run_id) AS n "
        "FROM runs r WHERE run_id IN ('w1', 'w2') ORDER BY run_id"
    ).to_pylist()
    assert got == [
        {"run_id": "w1", "status": "complete", "n": 600},
        {"run_id": "w2", "status": "complete", "n": 600},
    ]
    dupes = store.query(
        "SELECT count(*) FROM (SELECT run_id, sample_id FROM answers GROUP BY ALL HAVING count(*) > 1)"
    )
    assert dupes.column(0)[0].as_py() == 0
    store.compact(grace_s=0)  # the new runs compact too, still without duplicates
    assert store.query("SELECT count(*) FROM answers WHERE run_id LIKE 'w%'").column(0)[0].as_py() == 1200


def test_a_writer_killed_mid_write_leaves_no_partial_file_and_resumes(tmp_path):
    root = tmp_path / "s"
    rows = 200_000
    for _attempt in range(5):
        run_id = f"k{_attempt}"
        proc = spawn("forever", str(root), run_id, str(rows))
        assert proc.stdout.readline().strip() == "ready"
        part_dir = root / "answers"
        deadline = time.time() + 60
        tmp = []
        while time.time() < deadline and not tmp:
            tmp = list(part_dir.glob("*/*/.*.tmp")) if part_dir.exists() else []
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if list(part_dir.glob("*/*/.*.tmp")):
            break  # killed while a part was being written
    else:
        pytest.fail("could not kill the writer in the middle of a write in 5 attempts")

    store = Store(root)
    for f in root.glob("answers/*/*/[!.]*.parquet"):
        assert pq.read_table(f).num_rows == rows  # every visible file is whole
    n = store.query("SELECT count(*) FROM answers WHERE run_id = ?", [run_id]).column(0)[0].as_py()
    assert n % rows == 0
    assert len(store.done_samples(run_id)) == n
    assert store.run_status(run_id) == "running"  # nobody closed it

    # the OS released the dead writer's lock: the run resumes and skips what it has
    assert store.begin_run(record(MODEL_A, 5, run_id)) == run_id
    assert store.query("SELECT attempts FROM runs WHERE run_id = ?", [run_id]).column(0)[0].as_py() == 2
    store.finish_run(run_id, "failed", error="killed")
    result = store.compact(tmp_age_s=0)
    assert result.tmp_removed >= 1 and not list(root.rglob("*.tmp"))
