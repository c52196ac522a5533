"""The audit as users run it, in separate processes: killed again and again in every phase (SIGKILL
and SIGTERM, with and without Prefect) and resumed to the result of an uninterrupted run; no
process outlives the CLI; two stores sharing one PREFECT_HOME; two audits writing one store; the
explain and generate steps on a real Dask LocalCluster."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from audit import AuditConfig, run_audit
from storage.store import Store
from tests.support.processes import alive
from tests.support.store_compare import run_differences

pytestmark = [pytest.mark.slow, pytest.mark.model]

SETTINGS = {"probe_images": 16, "seed": 3, "regions": 48}
CLI = [sys.executable, "-m", "eagle_audit", "audit", "--no-report", "--json"] + [
    a for k, v in SETTINGS.items() for a in (f"--{k.replace('_', '-')}", str(v))
]


def _env(prefect_home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PREFECT_HOME"] = str(prefect_home)
    return env


def _children(pid: int) -> set[int]:
    """Every descendant of `pid` (from /proc)."""
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                kids = {int(c) for c in (task / "children").read_text().split()}
            except OSError:
                continue
            todo += list(kids - found)
            found |= kids
    return found


class Attempt:
    """One CLI run whose stderr is watched line by line, to be killed when a line matches."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [*CLI, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.lines: list[str] = []
        self.changed = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            with self.changed:
                self.lines.append(line)
                self.changed.notify_all()
        with self.changed:
            self.lines.append("<eof>")
            self.changed.notify_all()

    def wait_for(self, pattern: str, timeout: float = 600) -> bool:
        """True once a stderr line matches; False if the process ended first."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.changed:
            while time.monotonic() < deadline:
                if any(regex.search(line) for line in self.lines):
                    return True
                if self.lines and self.lines[-1] == "<eof>":
                    return False
                self.changed.wait(1)
        raise TimeoutError(f"no line matching {pattern!r} within {timeout}s:\n{''.join(self.lines)[-3000:]}")

    def kill(self, sig: int) -> set[int]:
        """Send `sig` to the CLI process only (not its group); returns its descendants before."""
        kids = _children(self.proc.pid)
        self.proc.send_signal(sig)
        return kids

    def finish(self, timeout: float = 120) -> tuple[int, str]:
        """Wait for the exit and for stdout to close: no survivor may hold the CLI's pipes open."""
        out, _ = self.proc.communicate(timeout=timeout)
        self.reader.join(timeout)
        assert not self.reader.is_alive(), "stderr stayed open after the CLI ended: a child holds it"
        return self.proc.returncode, out


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> tuple[Store, str]:
    root = tmp_path_factory.mktemp("reference")
    result = run_audit(AuditConfig(store=root / "store", report=False, **SETTINGS))
    assert result.targets >= 2, "the test needs at least two hallucinations to explain"
    return Store(root / "store"), result.run_id


def test_killed_in_every_phase_and_resumed_equals_an_uninterrupted_run(uninterrupted, tmp_path: Path) -> None:
    ref_store, ref_run = uninterrupted
    store = tmp_path / "store"
    env = _env(tmp_path / "prefect")
    base = ["--store", str(store), "--run-id", "killed"]
    rng = random.Random(20261130)
    began = r"run killed: model"  # logged once the run is open in the store
    # (extra CLI args, the stderr line after which to kill, a random extra delay up to (s), signal);
    # the delays stay short: a resumed run has little left, and one that ends before its kill ends the plan
    plan = [
        ([], r"generate: \d+/", 0, signal.SIGKILL),  # with Prefect, mid-generation
        (["--no-prefect"], r"audit: ", 3, signal.SIGKILL),  # a random early moment
        ([], r"explain: \d+ to compute", 0.5, signal.SIGTERM),  # with Prefect, explain tasks running, SIGTERM
        ([], r"explain: \d+ to compute", 0, signal.SIGKILL),  # with Prefect, explain tasks running
        (["--no-prefect"], r"explain: 1/", 0, signal.SIGKILL),  # one explanation done, buffered
        ([], began, 1, signal.SIGTERM),  # with Prefect, a random moment of the open run
        (["--no-prefect"], r"explain: 2/2", 0, signal.SIGKILL),  # all explained: metrics next
    ]
    killed = started = opened = 0  # attempts started, and those seen opening the run in the store
    finished = False  # an attempt ran to the end before its kill: nothing left to resume
    for args, trigger, delay, sig in plan:
        attempt = Attempt(base + args, env)
        started += 1
        reached = attempt.wait_for(trigger)
        if reached and delay:
            time.sleep(rng.uniform(0, delay))
            reached = attempt.proc.poll() is None
        if not reached:  # the run got past this phase before the trigger: nothing to kill
            code, out = attempt.finish()
            assert code == 0, "".join(attempt.lines)[-3000:]
            opened += 1
            finished = True
            break
        kids = attempt.kill(sig)
        code, _ = attempt.finish()
        killed += 1
        assert code != 0
        survivors = [pid for pid in kids if alive(pid)]
        for _ in range(50):
            if not survivors:
                break
            time.sleep(0.2)
            survivors = [pid for pid in survivors if alive(pid)]
        assert not survivors, f"processes outlived the killed CLI: {survivors}"
        status = Store(store).run_status("killed")
        if status == "complete":
            # The signal landed after the run recorded its end (while the report was written or the
            # process exited): a finished run, which the comparison below must still match.
            finished = True
            break
        assert status in ("running", "failed"), status
        if sig == signal.SIGTERM:  # ends the run like Ctrl-C: recorded as failed, the interrupt as cause
            error = Store(store).query("SELECT error FROM runs WHERE run_id = 'killed'").column(0)[0].as_py()
            assert status == "failed" and error.startswith("interrupted: "), error
    assert killed >= 5
    if not finished:
        final = Attempt(base, env)
        started += 1
        opened += 1
        code, out = final.finish(timeout=1500)
        assert code == 0, "".join(final.lines)[-3000:]
        summary = json.loads(out.strip().splitlines()[-1])
        assert summary["status"] == "complete"
    st = Store(store)
    assert run_differences(ref_store, ref_run, st, "killed") == []
    attempts = st.query("SELECT attempts, status FROM runs WHERE run_id = 'killed'").to_pylist()
    # Each attempt that opened the run counts once; one killed before it opened the run (a random
    # early moment) may or may not have, depending on where between the two the signal landed.
    assert len(attempts) == 1 and attempts[0]["status"] == "complete"
    assert opened <= attempts[0]["attempts"] <= started, (opened, attempts, started)
    # Resuming a complete run is refused with one clear line.
    again = subprocess.run([*CLI, *base], env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and again.stderr.strip() == (
        f"Error: --run-id: run 'killed' is already complete in {store}; "
        "drop --run-id to start a new run (or pass a new id)"
    )


def test_two_stores_sharing_one_prefect_home_each_get_their_rows(tmp_path: Path) -> None:
    env = _env(tmp_path / "shared-prefect-home")
    runs = []
    for name in ("a", "b"):  # one after the other: the second must not be served from the first's work
        out = subprocess.run(
            [*CLI, "--store", str(tmp_path / name), "--explain", "2"],
            env=env, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr[-3000:]
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    for name, summary in zip(("a", "b"), runs, strict=True):
        n = Store(tmp_path / name).query(
            "SELECT count(*) FROM explanations WHERE method LIKE 'eagle-%' AND error IS NULL"
        ).column(0)[0].as_py()
        assert n == summary["explained"] == summary["computed_explanations"] == 2, (name, summary)
    a, b = Store(tmp_path / "a"), Store(tmp_path / "b")
    assert run_differences(a, runs[0]["run_id"], b, runs[1]["run_id"]) == []


def test_two_audits_write_one_store_at_once(tmp_path: Path) -> None:
    store = tmp_path / "store"
    procs = [
        subprocess.Popen(
            [*CLI, "--store", str(store), "--run-id", f"together-{i}", "--explain", "2", "--regions", "16"],
            env=_env(tmp_path / f"prefect-{i}"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        for i in range(2)
    ]
    outs = [p.communicate(timeout=1500)[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-2000:] for o in outs)
    st = Store(store)
    runs = st.query("SELECT run_id, status FROM runs ORDER BY run_id").to_pylist()
    assert runs == [
        {"run_id": "together-0", "status": "complete"},
        {"run_id": "together-1", "status": "complete"},
    ]
    assert run_differences(st, "together-0", st, "together-1") == []


def test_explanations_on_a_dask_local_cluster_match_the_thread_runner(uninterrupted, tmp_path: Path) -> None:
    from distributed import Client, LocalCluster, get_task_stream

    ref_store, ref_run = uninterrupted
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as client,
        get_task_stream(client) as stream,
    ):
        out = subprocess.run(
            [*CLI, "--store", str(tmp_path / "store"), "--task-runner", f"dask={cluster.scheduler_address}",
             "--explain-concurrency", "2"],
            env=_env(tmp_path / "prefect"), capture_output=True, text=True, timeout=1500,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr[-3000:]
        workers = set(cluster.scheduler_info["workers"])
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    # every generate and explain task ran on the cluster's two worker processes, not in the CLI
    ran = [(str(r["key"]), r["worker"]) for r in stream.data]
    explained = [w for key, w in ran if "explain" in key]
    assert len(explained) == summary["computed_explanations"] >= 2 and set(explained) <= workers
    assert any("generate" in key for key, _ in ran)
    assert run_differences(ref_store, ref_run, Store(tmp_path / "store"), summary["run_id"]) == []
