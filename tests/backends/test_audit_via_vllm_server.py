"""The audit command against a real vLLM server: the same answers, marks and explanations as the
in-process run of the same model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from storage.store import Store

pytestmark = [pytest.mark.vllm, pytest.mark.slow, pytest.mark.model]


def _audit(tmp: Path, name: str, *extra: str, seed: int = 3) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env |= {
        "PREFECT_HOME": str(tmp / f"prefect-{name}-{time.time_ns()}"),
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "300",
    }
    cmd = [
        sys.executable,
        "-m",
        "eagle_audit",
        "audit",
        "--store",
        str(tmp / "store"),
        "--run-id",
        name,
        "--probe-images",
        "16",
        "--seed",
        str(seed),
        "--regions",
        "12",
        "--explain",
        "2",
        "--no-report",
        "--json",
        *extra,
    ]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1500)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_audit_through_the_server_matches_the_in_process_audit(vllm_server, tmp_path: Path) -> None:
    served = _audit(
        tmp_path, "served", "--backend", "vllm-server", "--endpoint", vllm_server.url, "--model", "probe"
    )
    local = _audit(tmp_path, "local")
    con = Store(tmp_path / "store").connect()
    backend, engine = con.execute(
        "SELECT backend, engine_version FROM runs WHERE run_id = 'served'"
    ).fetchone()
    assert backend == "vllm-server" and "vllm" in (engine or "").lower()
    differ = con.execute(
        """SELECT count(*) FROM answers s JOIN answers l ON s.sample_id = l.sample_id
           WHERE s.run_id = 'served' AND l.run_id = 'local' AND s.token_ids IS DISTINCT FROM l.token_ids"""
    ).fetchone()[0]
    n = con.execute("SELECT count(*) FROM answers WHERE run_id = 'served'").fetchone()[0]
    assert n > 0 and differ == 0, f"{differ} of {n} answers differ between the server and in-process"
    marks = con.execute("SELECT run_id, count(*) FROM marks GROUP BY run_id ORDER BY run_id").fetchall()
    assert len(marks) == 2 and marks[0][1] == marks[1][1] > 0, marks
    orders = con.execute(
        """SELECT s.sample_id, s.region_order = l.region_order
           FROM explanations s JOIN explanations l USING (sample_id, method)
           WHERE s.run_id = 'served' AND l.run_id = 'local' AND s.method LIKE 'eagle-%'"""
    ).fetchall()
    assert orders and served["explained"] == local["explained"] == len(orders)
    assert sum(same for _, same in orders) >= len(orders) - 1, orders


def test_caption_audit_through_the_server_matches_the_in_process_audit(vllm_server, tmp_path: Path) -> None:
    """The same captions (64 new tokens), the same hallucinated spans and marks, and the same region
    orders for the explanations of the spans' absence (seed 6: a star and a ring are made up)."""
    args = ("--benchmark", "captions")
    server = ("--backend", "vllm-server", "--endpoint", vllm_server.url, "--model", "probe")
    served = _audit(tmp_path, "served", *args, *server, seed=6)
    local = _audit(tmp_path, "local", *args, seed=6)
    assert served["benchmark"] == local["benchmark"] == "captions"
    con = Store(tmp_path / "store").connect()
    differ = con.execute(
        """SELECT count(*) FROM answers s JOIN answers l ON s.sample_id = l.sample_id
           WHERE s.run_id = 'served' AND l.run_id = 'local' AND s.token_ids IS DISTINCT FROM l.token_ids"""
    ).fetchone()[0]
    assert differ == 0
    marks = con.execute(
        """SELECT run_id, list((sample_id, token_index, token_end, object_class)
               ORDER BY sample_id, token_index)
           FROM marks GROUP BY run_id ORDER BY run_id"""
    ).fetchall()
    assert len(marks) == 2 and marks[0][1] == marks[1][1] and len(marks[0][1]) >= 2, marks
    orders = con.execute(
        """SELECT s.sample_id, s.target_position, s.region_order = l.region_order, s.objective
           FROM explanations s JOIN explanations l USING (sample_id, method, target_position)
           WHERE s.run_id = 'served' AND l.run_id = 'local' AND s.method LIKE 'eagle-%'"""
    ).fetchall()
    assert orders and served["explained"] == local["explained"] == len(orders) == 2
    assert all(objective == "span-absence" and same for _, _, same, objective in orders), orders
