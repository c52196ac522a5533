"""The audit engine without Prefect: the shipped probe model in-process on a small probe world, a
real Parquet store read back through DuckDB. Resume after a crash, reuse across runs of one store
(and only of one store), the failure policy, and what an audit of a real model imports."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from audit import AuditConfig, AuditFailed, run_audit
from audit.runner import LocalRunner
from storage.store import Store
from tests.support.store_compare import run_differences

pytestmark = [pytest.mark.slow, pytest.mark.model]

SMALL = {"probe_images": 16, "regions": 16, "seed": 3, "report": False}


class Crash(BaseException):
    """Stands in for a kill: a BaseException, like KeyboardInterrupt, that no step catches."""


class CrashingRunner(LocalRunner):
    """Runs jobs in this process and crashes after `after` results of step `step`."""

    def __init__(self, step: str, after: int) -> None:
        self.step, self.after = step, after

    def map(self, fn: Callable, jobs: Sequence, *, name: str, window: int) -> Iterator[tuple[Any, Any]]:
        for i, item in enumerate(super().map(fn, jobs, name=name, window=window)):
            if name == self.step and i == self.after:
                raise Crash(f"killed during {name}")
            yield item


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Store, Any]:
    """An uninterrupted run, the reference the other runs are compared with."""
    root = tmp_path_factory.mktemp("reference")
    result = run_audit(AuditConfig(store=root / "store", **SMALL))
    return Store(root / "store"), result


def test_a_run_writes_every_table_and_closes(reference) -> None:
    st, result = reference
    assert result.status == "complete" and result.failed_samples == 0
    con = st.connect()
    status, model_id, revision = con.execute(
        "SELECT status, model_id, model_revision FROM runs WHERE run_id = ?", [result.run_id]
    ).fetchone()
    assert status == "complete" and model_id == "probe" and len(revision) == 64
    n_answers = con.execute("SELECT count(*) FROM answers WHERE run_id = ?", [result.run_id]).fetchone()[0]
    assert n_answers == result.generated > result.questions  # a pair is stored once per split it occurs in
    assert result.targets >= 2 and result.explained == result.targets == result.computed_explanations
    eagle, tokens = con.execute(
        "SELECT count(*) FILTER (WHERE method LIKE 'eagle-%'),"
        " count(*) FILTER (WHERE method = 'answer-tokens') FROM explanations"
        " WHERE run_id = ? AND error IS NULL AND cache_key IS NOT NULL",
        [result.run_id],
    ).fetchone()
    assert eagle == tokens == result.targets
    # rows were buffered: far fewer part files than rows
    parts = list((st.root / "explanations").rglob("part-*.parquet"))
    assert len(parts) == 1, parts


def test_a_crash_in_any_step_resumes_to_the_uninterrupted_result(reference, tmp_path: Path) -> None:
    ref_store, ref = reference
    store = tmp_path / "store"
    config = AuditConfig(store=store, run_id="crashy", **SMALL)
    for step, after in (("generate", 2), ("explain", 1)):
        with pytest.raises(Crash):
            run_audit(config, runner=CrashingRunner(step, after), buffer_rows=1)
        assert Store(store).run_status("crashy") == "failed"
    result = run_audit(config)
    assert result.status == "complete"
    assert result.computed_explanations == ref.targets - 1  # one was stored before the second crash
    assert run_differences(ref_store, ref.run_id, Store(store), "crashy") == []
    attempts = Store(store).query("SELECT attempts FROM runs WHERE run_id = 'crashy'").column(0).to_pylist()
    assert attempts == [3]


def test_explanations_are_reused_within_a_store_and_not_across_stores(reference, tmp_path: Path) -> None:
    ref_store, ref = reference
    again = run_audit(AuditConfig(store=ref_store.root, **SMALL))
    assert again.reused_explanations == ref.targets and again.computed_explanations == 0
    assert run_differences(ref_store, ref.run_id, ref_store, again.run_id) == []
    # Another store (same settings, same model) computes its own: nothing crosses stores.
    other = run_audit(AuditConfig(store=tmp_path / "other", **SMALL))
    assert other.reused_explanations == 0 and other.computed_explanations == ref.targets
    assert run_differences(ref_store, ref.run_id, Store(tmp_path / "other"), other.run_id) == []


def test_a_run_with_too_many_failed_samples_ends_failed(reference, tmp_path: Path) -> None:
    ref_store, _ = reference
    world = next((ref_store.root / "datasets").iterdir())
    copy = tmp_path / "world"
    shutil.copytree(world, copy)
    (copy / "images" / "probe_000001.png").write_bytes(b"not a png at all")
    (copy / "images" / "probe_000002.png").unlink()
    config = dict(dataset="repope", annotations=copy, images=copy / "images", explain="none")
    # 2 of 16 images unreadable: above the default share of 5%
    with pytest.raises(AuditFailed) as failed:
        run_audit(AuditConfig(store=tmp_path / "s1", report=True, **config))
    result = failed.value.result
    assert result.status == "failed" and result.failed_samples > 0
    assert "samples failed" in result.error and "--max-failed-share" in result.error
    st = Store(tmp_path / "s1")
    assert st.run_status(result.run_id) == "failed"
    html = result.report.read_text()
    assert 'id="failed-banner"' in html and "samples failed" in html
    # only the unreadable images failed; the others were answered
    rows = st.query(
        "SELECT image, count(*) FILTER (WHERE error IS NOT NULL) AS bad, count(*) AS n FROM answers"
        " WHERE run_id = ? GROUP BY image",
        [result.run_id],
    ).to_pylist()
    assert {r["image"] for r in rows if r["bad"]} == {"probe_000001.png", "probe_000002.png"}
    assert all(r["bad"] in (0, r["n"]) for r in rows)
    # with a tolerance above the failed share the same inputs complete
    ok = run_audit(AuditConfig(store=tmp_path / "s2", max_failed_share=0.5, **config))
    assert ok.status == "complete" and ok.failed_samples == result.failed_samples


def test_a_run_whose_every_sample_failed_ends_failed(reference, tmp_path: Path) -> None:
    ref_store, _ = reference
    world = next((ref_store.root / "datasets").iterdir())
    empty = tmp_path / "images"
    empty.mkdir()
    with pytest.raises(AuditFailed) as failed:
        run_audit(
            AuditConfig(store=tmp_path / "s", dataset="repope", annotations=world, images=empty, report=False)
        )
    assert failed.value.result.failed_samples == failed.value.result.questions > 0
    assert Store(tmp_path / "s").run_status(failed.value.result.run_id) == "failed"


def test_an_audit_of_a_real_model_never_imports_prefect(tmp_path: Path) -> None:
    """The engine runs without Prefect: a subprocess audits with a checkpoint directory (not the
    probe default) and reports which packages it imported."""
    from probe.model import build_untrained, save_checkpoint
    from probe.world import write_world

    world = tmp_path / "world"
    write_world(world, seed=1, n_images=3)
    model, processor = build_untrained(seed=0)
    save_checkpoint(model, processor, tmp_path / "ckpt")
    code = f"""
import json, sys
from audit import AuditConfig, run_audit
r = run_audit(AuditConfig(store={str(tmp_path / "store")!r}, dataset="repope",
              annotations={str(world)!r}, images={str(world / "images")!r},
              model={str(tmp_path / "ckpt")!r}, explain="none", report=False))
print(json.dumps({{"status": r.status, "modules": sorted({{m.split('.')[0] for m in sys.modules}})}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["status"] == "complete"
    assert "prefect" not in summary["modules"]


def test_the_run_record_names_an_interrupt_and_its_signal() -> None:
    from audit.engine import describe_failure

    class Terminated(BaseException):  # like Prefect's TerminationSignal: empty message, a signal
        signal = 15

    assert describe_failure(ValueError("bad row")) == "ValueError: bad row"
    assert describe_failure(KeyboardInterrupt("signal 15")) == "interrupted: KeyboardInterrupt: signal 15"
    assert describe_failure(Terminated()) == "interrupted: Terminated (signal 15)"


def test_an_interrupt_in_a_store_query_ends_the_run_interrupted(reference, tmp_path, monkeypatch) -> None:
    """DuckDB turns an interrupt raised inside the store's filesystem into its own error: the run
    must still end as interrupted (seen: a SIGTERM landing in a query recorded a DuckDB traceback)."""
    import storage.readonly_fs as readonly_fs

    real_iglob = readonly_fs.pyglob.iglob
    armed: list[bool] = []

    def iglob(*args, **kwargs):  # the first glob after the first explanation raises the interrupt
        if armed and armed.pop():
            raise Crash("signal 15")
        return real_iglob(*args, **kwargs)

    def progress(step: str, done: int, total: int) -> None:
        if step == "explain" and done == 1 and not armed:
            armed.append(True)
            monkeypatch.setattr(readonly_fs.pyglob, "iglob", iglob)

    store = tmp_path / "store"
    with pytest.raises(Crash):
        run_audit(AuditConfig(store=store, run_id="stopped", **SMALL), progress=progress, buffer_rows=1)
    monkeypatch.undo()
    assert armed == []  # the interrupt was raised (inside a query: the glob runs in DuckDB)
    error = Store(store).query("SELECT status, error FROM runs WHERE run_id = 'stopped'").to_pylist()
    assert error == [{"status": "failed", "error": "interrupted: Crash: signal 15"}]
