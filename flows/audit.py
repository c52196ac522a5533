"""The Prefect `audit` flow: thin wiring of the Prefect-free engine (`audit.run_audit`, which owns
the run: resume, reuse, writes, failure policy). The generate and explain steps run as Prefect
tasks on the flow's task runner (threads, or Dask with `--task-runner dask=ADDRESS`); tasks do not
retry (the model backend retries its own requests) and cache nothing (the store is the memory).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_table_artifact
from prefect.cache_policies import NONE

from audit import AuditConfig, run_audit
from audit.engine import HEADLINE_COLUMNS, AuditResult, ProgressLog
from audit.explain import explain as explain_step
from audit.generate import generate as generate_step
from flows.runners import PrefectRunner

_STEP = {"cache_policy": NONE, "persist_result": False, "retries": 0}
generate_task = task(generate_step, name="generate", **_STEP)
explain_task = task(explain_step, name="explain", **_STEP)


@flow(name="audit", log_prints=False)
def audit_flow(
    store: str,
    dataset: str = "probe",
    annotations: str | None = None,
    images: str | None = None,
    splits: list[str] | None = None,
    limit: int | None = None,
    backend: str = "hf",
    model: str | None = None,
    endpoint: list[str] | None = None,
    backend_options: dict[str, Any] | None = None,
    explain: str = "all",
    regions: int = 64,
    search: str = "efficient",
    seed: int = 0,
    probe_images: int = 40,
    run_id: str | None = None,
    explain_concurrency: int = 1,
    max_failed_share: float = 0.05,
    report: bool = True,
    sample_seed: int = 0,
) -> dict[str, Any]:
    """Audit a model on POPE/RePOPE-format questions into the Parquet store `store`; the flow run
    fails when the audit ends `failed` (so Prefect's notifications fire)."""
    config = AuditConfig(
        store=Path(store),
        dataset=dataset,
        annotations=Path(annotations) if annotations else None,
        images=Path(images) if images else None,
        **({"splits": tuple(splits)} if splits else {}),
        limit=limit,
        sample_seed=sample_seed,
        backend=backend,
        model=model,
        endpoint=tuple(endpoint or ()),
        backend_options=backend_options or {},
        explain=explain,
        regions=regions,
        search=search,
        seed=seed,
        probe_images=probe_images,
        run_id=run_id,
        explain_concurrency=explain_concurrency,
        max_failed_share=max_failed_share,
        report=report,
    )
    logger, progress = get_run_logger(), ProgressLog()
    runner = PrefectRunner({generate_step: generate_task, explain_step: explain_task})
    result = run_audit(
        config,
        runner=runner,
        progress=lambda step, done, total: _progress(logger, progress, step, done, total),
    )
    _artifacts(result)
    return result.to_dict()


def _progress(logger: Any, local: ProgressLog, step: str, done: int, total: int) -> None:
    """Progress on the CLI's stderr and in the Prefect UI."""
    local(step, done, total)
    logger.info("%s: %d/%d", step, done, total)


def _artifacts(result: AuditResult) -> None:
    create_table_artifact(
        key="audit-metrics",
        table=[{k: r[k] for k in HEADLINE_COLUMNS} for r in result.metrics],
        description=f"POPE/RePOPE metrics of run {result.run_id}",
    )
    if result.report is not None:
        create_link_artifact(
            key="audit-report",
            link=result.report.resolve().as_uri(),
            description=f"HTML audit report of run {result.run_id}",
        )
