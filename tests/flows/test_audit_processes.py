"""The audit as users run it, in separate processes: killed mid-run and resumed, and two audits
writing to one store at the same time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from storage.store import Store

pytestmark = [pytest.mark.slow, pytest.mark.model]

CLI = [
    sys.executable,
    "-m",
    "eagle_audit",
    "audit",
    "--probe-images",
    "16",
    "--seed",
    "3",
    "--regions",
    "16",
    "--no-report",
    "--json",
]


def _env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PREFECT_API_URL", None)  # each process gets its own temporary Prefect API
    env["PREFECT_HOME"] = str(tmp / f"prefect-{time.time_ns()}")
    env["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "300"
    return env


def _parquet_parts(store: Path, table: str) -> list[Path]:
    """The part files a query can see (a writer's hidden temporary files do not count)."""
    return sorted(p for p in (store / table).rglob("*.parquet") if p.is_file() and not p.name.startswith("."))


def test_sigkill_mid_run_then_resume_recomputes_nothing_finished(tmp_path: Path) -> None:
    store = tmp_path / "store"
    # 64 regions: each explanation takes seconds, so the kill lands while several are still to do.
    cmd = [*CLI, "--store", str(store), "--run-id", "crash-test", "--regions", "64"]
    log = open(tmp_path / "first-attempt.log", "wb")  # a file, not a pipe nobody reads while it runs
    proc = subprocess.Popen(
        cmd, env=_env(tmp_path), start_new_session=True, stdout=log, stderr=subprocess.STDOUT
    )
    deadline = time.time() + 900
    try:
        while time.time() < deadline and not _parquet_parts(store, "explanations"):
            if proc.poll() is not None:
                pytest.fail((tmp_path / "first-attempt.log").read_text()[-3000:])
            time.sleep(0.05)
        assert _parquet_parts(store, "explanations"), "no explanation was written before the deadline"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        log.close()
    assert proc.returncode == -signal.SIGKILL, (
        f"the audit exited on its own ({proc.returncode}) before the kill"
    )
    # Nothing partial is visible: every file DuckDB can see is a complete Parquet file, and a
    # temporary file the kill interrupted (if any) is not read.
    st = Store(store)
    con = st.connect()
    hidden = [p for p in (store / "explanations").rglob(".*") if p.is_file()]
    rows_on_disk = sum(pq.read_metadata(p).num_rows for p in _parquet_parts(store, "explanations"))
    assert con.execute("SELECT count(*) FROM explanations").fetchone()[0] == rows_on_disk, hidden
    before = {
        r[0]
        for r in con.execute(
            "SELECT sample_id FROM explanations WHERE run_id = 'crash-test' AND method LIKE 'eagle-%'"
        ).fetchall()
    }
    assert (
        before
        and con.execute("SELECT status FROM runs WHERE run_id = 'crash-test'").fetchone()[0] == "running"
    )
    answers_before = con.execute("SELECT count(*) FROM answers WHERE run_id = 'crash-test'").fetchone()[0]

    out = subprocess.run(cmd, env=_env(tmp_path), capture_output=True, text=True, timeout=1500)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    import json

    summary = json.loads(out.stdout.strip().splitlines()[-1])
    con = Store(store).connect()
    rows, distinct = con.execute(
        """SELECT count(*), count(DISTINCT (sample_id, method, target_position))
           FROM explanations WHERE run_id = 'crash-test'"""
    ).fetchone()
    assert rows == distinct, "a resumed run must not duplicate explanation rows"
    total = con.execute(
        "SELECT count(*) FROM explanations WHERE run_id = 'crash-test' AND method LIKE 'eagle-%'"
    ).fetchone()[0]
    # Only the explanations the killed process had not finished were computed again.
    assert summary["computed_explanations"] == total - len(before)
    dup_answers = con.execute(
        "SELECT count(*) - count(DISTINCT sample_id) FROM answers WHERE run_id = 'crash-test'"
    ).fetchone()[0]
    assert dup_answers == 0
    assert (
        summary["generated"]
        == con.execute("SELECT count(*) FROM answers WHERE run_id = 'crash-test'").fetchone()[0]
        - answers_before
    )
    assert con.execute("SELECT status, attempts FROM runs WHERE run_id = 'crash-test'").fetchone() == (
        "complete",
        2,
    )


def test_two_audits_write_one_store_at_once(tmp_path: Path) -> None:
    store = tmp_path / "store"
    procs = [
        subprocess.Popen(
            [*CLI, "--store", str(store), "--run-id", f"together-{i}", "--explain", "2"],
            env=_env(tmp_path),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=1500)[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-2000:] for o in outs)
    con = Store(store).connect()
    runs = con.execute("SELECT run_id, status FROM runs ORDER BY run_id").fetchall()
    assert runs == [("together-0", "complete"), ("together-1", "complete")]
    per_run = con.execute(
        "SELECT run_id, count(*), count(DISTINCT sample_id) FROM answers GROUP BY run_id ORDER BY run_id"
    ).fetchall()
    assert per_run[0][1:] == per_run[1][1:] and per_run[0][1] == per_run[0][2] > 0
    # Same model, same data: the two runs agree answer for answer.
    diff = con.execute(
        """SELECT count(*) FROM answers a JOIN answers b ON a.sample_id = b.sample_id
           WHERE a.run_id = 'together-0' AND b.run_id = 'together-1'
             AND a.answer_text IS DISTINCT FROM b.answer_text"""
    ).fetchone()[0]
    assert diff == 0
