"""The Prefect `audit` flow (named audit_flow.py: Prefect imports a flow file under its own stem, which must
not shadow the `audit` package): thin wiring of the Prefect-free engine (`audit.run_audit`, which owns
the run: resume, reuse, writes, failure policy). The generate and explain steps run as Prefect
tasks on the flow's task runner (threads, or Dask with `--task-runner dask=ADDRESS`); tasks do not
retry (the model backend retries its own requests) and cache nothing (the store is the memory).
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE

from audit import AuditConfig, run_audit
from audit.engine import AuditResult, ProgressLog
from audit.explain import explain as explain_step
from audit.gate import CANNOT, FAIL, GateFailed, GateResult, load_policy, run_gate
from audit.generate import generate as generate_step
from eagle.search import DEFAULT_SEARCH
from flows.runners import PrefectRunner

_STEP = {"cache_policy": NONE, "persist_result": False, "retries": 0}
generate_task = task(generate_step, name="generate", **_STEP)
explain_task = task(explain_step, name="explain", **_STEP)
gate_task = task(run_gate, name="gate", **_STEP)


@flow(name="audit", log_prints=False)
def audit_flow(
    store: str,
    benchmark: str = "pope",
    dataset: str = "probe",
    annotations: str | None = None,
    images: str | None = None,
    instances: str | None = None,
    splits: list[str] | None = None,
    limit: int | None = None,
    backend: str = "hf",
    model: str | None = None,
    endpoint: list[str] | None = None,
    backend_options: dict[str, Any] | None = None,
    explain: str = "all",
    regions: int = 64,
    search: str = DEFAULT_SEARCH,
    seed: int = 0,
    probe_images: int = 40,
    max_new_tokens: int | None = None,
    run_id: str | None = None,
    explain_concurrency: int = 1,
    max_failed_share: float = 0.05,
    report: bool = True,
    sample_seed: int = 0,
    gate: str | None = None,
    gate_baseline: str | None = None,
) -> dict[str, Any]:
    """Audit a model on a benchmark (`benchmark`: "pope", "captions" or any registered plug-in)
    into the Parquet store `store`, then, with `gate` (a policy file such as gate.toml), judge the
    run with the release gate against `gate_baseline` (default: the policy's). The flow run fails
    when the audit ends `failed` or the gate finds a regression (so Prefect's notifications fire); a
    gate that cannot judge (e.g. no earlier run to compare with) logs a warning."""
    # The other parameters are AuditConfig's fields; unset ones (None) take its defaults.
    fields = {name: value for name, value in locals().items() if value is not None}
    gate, gate_baseline = fields.pop("gate", None), fields.pop("gate_baseline", None)
    policy = load_policy(gate) if gate else None  # a bad policy fails before the audit starts
    config = AuditConfig(**fields)
    logger, progress = get_run_logger(), ProgressLog()
    runner = PrefectRunner({generate_step: generate_task, explain_step: explain_task})
    result = run_audit(
        config,
        runner=runner,
        progress=lambda step, done, total: _progress(logger, progress, step, done, total),
    )
    _artifacts(result)
    summary = result.to_dict()
    if policy is not None:
        verdict: GateResult = gate_task(config.store, policy, result.run_id, baseline=gate_baseline)
        summary["gate"] = verdict.to_dict()
        create_markdown_artifact(
            key="release-gate",
            markdown=f"```\n{verdict.explain()}\n```",
            description=f"Release gate of run {result.run_id}: {verdict.verdict}",
        )
        if verdict.verdict == FAIL:
            raise GateFailed(verdict, summary)
        if verdict.verdict == CANNOT:
            logger.warning("release gate cannot judge run %s:\n%s", result.run_id, verdict.explain())
        else:
            logger.info("release gate passed:\n%s", verdict.explain())
    return summary


def _progress(logger: Any, local: ProgressLog, step: str, done: int, total: int) -> None:
    """Progress on the CLI's stderr and in the Prefect UI."""
    local(step, done, total)
    logger.info("%s: %d/%d", step, done, total)


def _artifacts(result: AuditResult) -> None:
    create_table_artifact(
        key="audit-metrics",
        table=result.metrics,
        description=f"{result.benchmark} metrics of run {result.run_id}",
    )
    if result.report is not None:
        create_link_artifact(
            key="audit-report",
            link=result.report.resolve().as_uri(),
            description=f"HTML audit report of run {result.run_id}",
        )
