"""prefect.yaml against a real Prefect server: `prefect deploy` registers the nightly deployment,
and a manually triggered run of it completes through a process worker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from eagle.backends.serving import free_port
from storage.store import Store

pytestmark = [pytest.mark.slow, pytest.mark.model]

REPO = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).with_name("prefect"))


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prefect server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"prefect server at {url} not healthy after {timeout} s")


def test_deploy_registers_the_nightly_audit_and_a_worker_runs_it(tmp_path: Path) -> None:
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    store = tmp_path / "store"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env |= {
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_API_URL": api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "EAGLE_AUDIT_HOME": str(REPO),
        "EAGLE_AUDIT_STORE": str(store),
    }
    server = subprocess.Popen(
        [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )

    def cli(*args: str, timeout: float = 300) -> str:
        out = subprocess.run(
            [PREFECT, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout
        )
        assert out.returncode == 0, (
            f"prefect {' '.join(args)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
        )
        return out.stdout

    try:
        _wait_healthy(api, server, timeout=300)
        cli("work-pool", "create", "eagle-audit", "--type", "process")
        cli("--no-prompt", "deploy", "--name", "nightly-probe", "--prefect-file", str(REPO / "prefect.yaml"))
        with urllib.request.urlopen(f"{api}/deployments/name/audit/nightly-probe", timeout=30) as r:
            dep = json.loads(r.read())
        crons = [(s["schedule"].get("cron"), s["schedule"].get("timezone")) for s in dep["schedules"]]
        assert crons == [("0 2 * * *", "UTC")], dep["schedules"]
        limit = dep.get("concurrency_limit") or (dep.get("global_concurrency_limit") or {}).get("limit")
        assert limit == 1, {k: dep.get(k) for k in ("concurrency_limit", "global_concurrency_limit")}
        assert dep["work_pool_name"] == "eagle-audit"
        assert dep["parameters"]["store"] == str(store), (
            "the store parameter comes from EAGLE_AUDIT_STORE at deploy time"
        )
        assert dep["parameters"]["gate"] == "gate.toml"  # the release gate runs after each audit
        params = {"probe_images": 4, "explain": "1", "regions": 8, "report": False}
        args = [a for k, v in params.items() for a in ("--param", f"{k}={json.dumps(v)}")]
        cli("deployment", "run", "audit/nightly-probe", *args)
        cli("worker", "start", "--pool", "eagle-audit", "--run-once", timeout=1200)
        body = json.dumps(
            {
                "flow_runs": {
                    "deployment_id": {"any_": [dep["id"]]},
                    "state": {"type": {"any_": ["COMPLETED"]}},
                }
            }
        ).encode()
        req = urllib.request.Request(
            f"{api}/flow_runs/filter", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            completed = json.loads(r.read())
        assert len(completed) == 1 and completed[0]["parameters"]["probe_images"] == 4
        # the gate ran (the first night has no earlier run to compare with: it cannot judge, and says so)
        body = json.dumps({"artifacts": {"key": {"any_": ["release-gate"]}}}).encode()
        req = urllib.request.Request(
            f"{api}/artifacts/filter", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            artifacts = json.loads(r.read())
        assert [a["flow_run_id"] for a in artifacts] == [completed[0]["id"]]
        assert "Gate CANNOT JUDGE" in artifacts[0]["data"]
        con = Store(store).connect()
        status = con.execute("SELECT status FROM runs").fetchall()
        assert status == [("complete",)]
        assert con.execute("SELECT count(*) FROM answers").fetchone()[0] > 0
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
