"""Faults inside a whole audit: a decompression-bomb image costs only its own samples, a server that
accepts connections and never answers ends the audit with one error within its bound (Prefect's
task retries do not multiply the backend's), and a disk that fills mid-run leaves the run marked
failed, or, when even that cannot be written, the next start reports why the attempt died."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest

from audit import AuditConfig, run_audit
from storage import store as store_module
from storage.store import Store
from tests.support.disk import fill_disk, small_tmpfs
from tests.support.images import write_png_bomb

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "backends"))
from hostile_servers import SilentServer  # noqa: E402


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """A small probe world (16 scenes) written by the engine's own probe data set code."""
    from audit.probe_world import ensure_world

    return ensure_world(tmp_path_factory.mktemp("world"), seed=3, n_images=16)


def repope(world: Path, **kw) -> dict:
    return dict(dataset="repope", annotations=world, images=world / "images", explain="none", **kw)


@pytest.mark.slow
@pytest.mark.model
def test_a_decompression_bomb_fails_only_its_own_samples(world, tmp_path):
    import shutil

    copy = tmp_path / "world"
    shutil.copytree(world, copy)
    write_png_bomb(copy / "images" / "probe_000003.png")  # 200 megapixels in ~24 KB
    result = run_audit(AuditConfig(store=tmp_path / "s", report=False, max_failed_share=0.5, **repope(copy)))
    assert result.status == "complete" and result.failed_samples > 0
    rows = Store(tmp_path / "s").query(
        "SELECT image, error, answer_text FROM answers WHERE run_id = ?", [result.run_id]
    ).to_pylist()
    bad = [r for r in rows if r["error"] is not None]
    assert {r["image"] for r in bad} == {"probe_000003.png"}
    assert all("probe_000003.png" in r["error"] and "decompression bomb" in r["error"] for r in bad)
    assert all(r["answer_text"] for r in rows if r["image"] != "probe_000003.png")


def _audit_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "eagle_audit", "audit", *args],
        capture_output=True, text=True, timeout=600, check=False, cwd=REPO, env=env,
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("prefect", [False, True], ids=["engine", "prefect"])
def test_a_server_that_never_answers_ends_the_audit_within_the_bound(world, tmp_path, prefect):
    timeout_s, attempts, backoff_s = 2.0, 5, 7.5  # backoff: at most 0.5 + 1 + 2 + 4 s
    args = ["--backend", "vllm-server", "--model", "fake", "--timeout", str(timeout_s), "--limit", "1",
            "--store", str(tmp_path / "s"), "--no-report", "--annotations", str(world),
            "--images", str(world / "images"), "--dataset", "repope", "--explain", "none"]  # fmt: skip
    with SilentServer(answer_models=True) as srv:
        t0 = time.monotonic()
        out = _audit_cli(*args, "--endpoint", srv.url, *([] if prefect else ["--no-prefect"]))
        ended = time.monotonic()
    chats = [t for t, line in srv.timed_requests if line.startswith("POST /v1/chat/completions")]
    assert out.returncode == 1, out.stderr[-2000:]
    # the backend's own attempts, once: no task retry around them
    assert len(chats) == attempts
    assert ended - chats[0] < attempts * timeout_s + backoff_s + 5  # + exit (Prefect server stop)
    assert chats[0] - t0 < 120  # start-up (model lookup, the temporary Prefect API)
    last = out.stderr.rstrip("\n").splitlines()[-1]
    assert last.startswith("Error: ") and "Traceback" not in out.stderr, out.stderr[-3000:]
    assert f"{srv.url} did not answer POST /v1/chat/completions within 2s (attempt 5 of 5)" in last
    status = Store(tmp_path / "s").query("SELECT status, error FROM runs").to_pylist()
    assert [s["status"] for s in status] == ["failed"] and "did not answer" in status[0]["error"]


@pytest.fixture
def small_disk(tmp_path: Path):
    with small_tmpfs(tmp_path / "disk", "6m") as mount:
        yield mount


class FillDiskAfterGenerate:
    """A progress callback that fills the disk once every question was answered (before the
    answers are flushed to the store)."""

    def __init__(self, disk: Path) -> None:
        self.disk, self.done = disk, False

    def __call__(self, step: str, done: int, total: int) -> None:
        if step == "generate" and done == total and not self.done:
            self.done = True
            fill_disk(self.disk)


@pytest.mark.slow
@pytest.mark.model
def test_a_full_disk_mid_audit_marks_the_run_failed(world, small_disk):
    config = AuditConfig(store=small_disk / "store", run_id="full", report=False, **repope(world))
    with pytest.raises(Exception) as raised:
        run_audit(config, progress=FillDiskAfterGenerate(small_disk))
    assert "no space left on the disk of" in str(raised.value)
    st = Store(small_disk / "store")
    (row,) = st.query("SELECT status, error FROM runs").to_pylist()
    assert row["status"] == "failed" and "DiskFullError: no space left on the disk of" in row["error"]
    assert not list((small_disk / "store").rglob(".*.tmp"))  # no partial files


@pytest.mark.slow
@pytest.mark.model
def test_when_the_failure_cannot_be_written_the_next_start_reports_why(
    world, small_disk, monkeypatch, caplog
):
    monkeypatch.setattr(store_module, "_RESERVE_BYTES", store_module._LAST_WORDS_BYTES)  # nothing to free
    config = AuditConfig(store=small_disk / "store", run_id="full", report=False, **repope(world))
    with pytest.raises(Exception, match="no space left"):
        run_audit(config, progress=FillDiskAfterGenerate(small_disk))
    assert Store(small_disk / "store").run_status("full") == "running"  # nothing could close it
    (small_disk / "filler").unlink()
    with caplog.at_level(logging.WARNING, logger="storage.store"):
        result = run_audit(config)
    assert result.status == "complete"
    (warning,) = [r.getMessage() for r in caplog.records if "previous attempt" in r.getMessage()]
    assert "died without closing the run: DiskFullError: no space left on the disk of" in warning
    events = Store(small_disk / "store").query(
        "SELECT status FROM run_events WHERE run_id = 'full' ORDER BY event_at"
    ).column(0).to_pylist()
    assert events == ["running", "failed", "running", "complete"]


def test_a_bomb_image_is_a_sample_error_in_the_engine(world, tmp_path):
    """Without a model: the engine's image loader turns the bomb into that sample's error."""
    from audit.data import SampleError, load_image

    write_png_bomb(tmp_path / "bomb.png")
    with pytest.raises(SampleError, match=r"cannot read image 'bomb\.png'.*decompression bomb"):
        load_image(tmp_path, "bomb.png")
    assert load_image(world / "images", "probe_000000.png").shape == (128, 128, 3)


@pytest.mark.slow
@pytest.mark.parametrize("prefect", [False, True], ids=["engine", "prefect"])
def test_a_full_disk_at_start_is_one_error_naming_the_disk(small_disk, prefect):
    """The probe world, or Prefect's database beside the store, cannot be written."""
    fill_disk(small_disk)
    out = _audit_cli("--store", str(small_disk / "store"), "--limit", "4", "--explain", "none",
                     "--no-report", *([] if prefect else ["--no-prefect"]))  # fmt: skip
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr[-3000:]
    last = out.stderr.rstrip("\n").splitlines()[-1]
    where = small_disk / "store" / (".prefect" if prefect else "datasets/probe-seed0-n40")
    assert last.startswith(f"Error: no space left on the disk of {where} (0 B free of 6.0 MiB); "), last
    assert last.endswith("then resume with the same --run-id")
    assert not [p for p in (small_disk / "store").rglob(".*tmp*")]  # no half-written world


def test_jobs_left_running_are_cancelled_only_when_their_futures_can_be():
    """Prefect's futures have no cancel(): stopping early (a failed job) must not raise another error."""
    from audit.runner import windowed

    class Done:
        def __init__(self, value):
            self.value = value

        def result(self):
            if self.value == 1:
                raise RuntimeError("job 1 failed")
            return self.value

    with pytest.raises(RuntimeError, match="job 1 failed"):
        list(windowed(Done, [0, 1, 2, 3], 3, lambda futures: futures[:1]))
