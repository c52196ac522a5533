"""The Prefect `audit` flow: thin wiring of `eagle_audit.pipeline` steps into tasks.

load -> generate (batched tasks) -> mark -> explain (one task per hallucination, a concurrency
limit per model endpoint) -> metrics -> report. Tasks write their rows to the store themselves
and return small summaries, so large arrays never become Prefect results. The run record is
written before the first model call and closed last; re-running with the same run id resumes:
samples and explanations the store already holds are skipped, and explanation tasks are cached on
(sample, image digest, model digest, method version, parameters).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_table_artifact

from auditors.scoring import METRICS
from eagle_audit import pipeline
from eagle_audit.pipeline import AuditConfig, AuditSummary, DataSource, ExplainSettings, Sample, Target
from storage.store import Store

_BACKENDS: dict[tuple[Any, ...], Any] = {}


def backend_for(cfg: AuditConfig):
    """One backend per process and configuration (loading a model is the expensive part)."""
    from eagle.backends import build_backend

    key = (cfg.backend, cfg.model, cfg.endpoint)
    if key not in _BACKENDS:
        _BACKENDS[key] = build_backend(cfg.backend, model=cfg.model, endpoint=",".join(cfg.endpoint) or None)
    return _BACKENDS[key]


def endpoint_limit_name(cfg: AuditConfig) -> str:
    where = ",".join(cfg.endpoint) if cfg.endpoint else f"in-process:{os.uname().nodename}"
    return "eagle-audit-endpoint:" + where.replace("/", "_")


def _transient(task, task_run, state) -> bool:
    """Retry serving hiccups (connection errors, 5xx, timeouts), not bad input."""
    try:
        state.result()
    except Exception as exc:  # noqa: BLE001 - classify whatever the task raised
        name = type(exc).__name__
        return any(
            word in name for word in ("Connection", "Timeout", "Unavailable", "ServerError", "Transient")
        )
    return False


@task(
    name="generate",
    retries=3,
    retry_delay_seconds=[2, 10, 30],
    retry_jitter_factor=0.5,
    retry_condition_fn=_transient,
    cache_policy=None,
)
def generate_task(cfg: AuditConfig, data: DataSource, batch: list[Sample], run_id: str) -> dict[str, int]:
    rows = pipeline.generate_answers(backend_for(cfg), data, batch, cfg)
    result = Store(cfg.store).write("answers", rows, run_id)
    return {"rows": result.rows_written, "failed": sum(r["error"] is not None for r in rows)}


def _explain_key(context, parameters: dict[str, Any]) -> str:
    return parameters["cache_key"]


@task(
    name="explain",
    retries=2,
    retry_delay_seconds=[5, 30],
    retry_jitter_factor=0.5,
    retry_condition_fn=_transient,
    cache_key_fn=_explain_key,
    persist_result=True,
)
def explain_task(
    cfg: AuditConfig,
    data: DataSource,
    target: Target,
    settings: ExplainSettings,
    run_id: str,
    cache_key: str,
    limit_name: str,
) -> dict[str, Any]:
    """Explain one hallucination; returns where its row lives (the run that computed it)."""
    from prefect.concurrency.sync import concurrency

    store = Store(cfg.store)
    with concurrency(limit_name, occupy=1):
        try:
            rows = pipeline.explain_target(backend_for(cfg), data, target, settings, store, run_id)
        except pipeline.SampleError as exc:
            rows = [pipeline.failed_explanation_row(target, settings, str(exc))]
    store.write("explanations", rows, run_id)
    row = rows[0]
    return {
        "run_id": run_id,
        "sample_id": row["sample_id"],
        "method": row["method"],
        "target_position": row["target_position"],
        "error": row["error"],
    }


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
    explain: str = "all",
    regions: int = 64,
    search: str = "efficient",
    seed: int = 0,
    probe_images: int = 40,
    run_id: str | None = None,
    explain_concurrency: int = 1,
    report: bool = True,
) -> dict[str, Any]:
    """Audit a model on POPE/RePOPE-format questions; results go to the Parquet store `store`."""
    logger = get_run_logger()
    cfg = AuditConfig(
        store=Path(store),
        dataset=dataset,
        annotations=Path(annotations) if annotations else None,
        images=Path(images) if images else None,
        splits=tuple(splits) if splits else pipeline.SPLITS,
        limit=limit,
        backend=backend,
        model=model,
        endpoint=tuple(endpoint or ()),
        explain=explain,
        regions=regions,
        search=search,
        seed=seed,
        probe_images=probe_images,
        run_id=run_id,
    )
    data = pipeline.prepare_data(cfg)
    # Bad annotations stop the run here, before any model call.
    annotations_set, samples = pipeline.load_samples(cfg, data)
    logger.info("%d unique questions from %s (%s)", len(samples), data.annotations, ", ".join(cfg.splits))
    model_backend = backend_for(cfg)
    record = pipeline.run_record(cfg, data, annotations_set, model_backend)
    st = Store(cfg.store)
    run_id = st.begin_run(record)
    cfg = replace(cfg, run_id=run_id)
    logger.info("run %s: model %s via %s", run_id, record.model_id, cfg.backend)
    try:
        summary = _run(
            cfg,
            data,
            annotations_set,
            samples,
            st,
            run_id,
            explain_concurrency,
            report,
            model_revision=record.model_revision,
        )
    except BaseException as exc:
        st.finish_run(run_id, "failed", error=f"{type(exc).__name__}: {exc}")
        raise
    st.finish_run(run_id, "complete")
    return summary


def _run(
    cfg: AuditConfig,
    data: DataSource,
    annotations_set,
    samples: list[Sample],
    st: Store,
    run_id: str,
    explain_concurrency: int,
    report: bool,
    model_revision: str | None,
) -> dict[str, Any]:
    logger = get_run_logger()
    done = st.done_samples(run_id, "answers")
    todo = [s for s in samples if not set(s.sample_ids()) <= done]
    logger.info(
        "generate: %d questions to ask, %d already answered in this run", len(todo), len(samples) - len(todo)
    )
    futures = [
        generate_task.submit(cfg, data, todo[i : i + cfg.batch_size], run_id)
        for i in range(0, len(todo), cfg.batch_size)
    ]
    gen = [f.result() for f in futures]

    answers = st.query("SELECT * FROM answers WHERE run_id = ?", [run_id]).to_pylist()
    marks, targets = pipeline.mark_answers(answers, backend_for(cfg))
    st.write("marks", marks, run_id)
    logger.info("mark: %d marked tokens, %d hallucinations to explain", len(marks), len(targets))

    limit = cfg.explain_limit
    targets = targets if limit is None else targets[:limit]
    settings = ExplainSettings(
        regions=cfg.regions, search=cfg.search, correction=cfg.correction, max_new_tokens=cfg.max_new_tokens
    )
    explained = {
        (k[0], k[2]) for k in st.done_keys(run_id, "explanations") if k[1] != pipeline.ANSWER_TOKENS_METHOD
    }
    pending = [t for t in targets if (t.pair_id, t.position) not in explained]
    logger.info(
        "explain: %d to explain, %d already explained in this run", len(pending), len(targets) - len(pending)
    )
    limit_name = pipeline_limit(cfg, explain_concurrency)
    # The cache may serve another run's explanation only when the model's weights are known to be
    # the same (the checkpoint digest the run record holds). A served model has no digest: cache
    # within this run only, so a model updated behind the same served name is never explained from
    # last night's cache.
    model_digest = model_revision if cfg.backend != "vllm-server" else None
    model_identity = model_digest or f"{cfg.model}@run:{run_id}"
    image_digests: dict[str, str] = {}  # several questions share an image: hash each file once
    efutures = []
    for t in pending:
        if t.image not in image_digests:
            path = data.images / t.image
            image_digests[t.image] = pipeline.file_sha256(path) if path.exists() else "missing"
        key = t.cache_key(model_identity, settings.params(), image_digests[t.image])
        efutures.append(explain_task.submit(cfg, data, t, settings, run_id, key, limit_name))
    results = [f.result() for f in efutures]
    copied = _copy_cached(st, run_id, results)

    answers_now = st.query("SELECT * FROM answers WHERE run_id = ?", [run_id]).to_pylist()
    metric_rows = pipeline.metrics_rows(annotations_set, answers_now, cfg.splits)
    st.write("metrics", metric_rows, run_id)
    headline = [r for r in metric_rows if r["object_class"] == "all"]
    create_table_artifact(
        key="audit-metrics",
        table=[{k: r[k] for k in ("label_set", "split", "n", *METRICS, "unparsed")} for r in headline],
        description=f"POPE/RePOPE metrics of run {run_id}",
    )
    report_path = None
    if report:
        try:
            report_path = _write_report(st, run_id)
        except Exception as exc:  # noqa: BLE001 - the report is derived from the store; the run's data is complete
            logger.warning(
                "could not write the HTML report: %s: %s (the run's results are in the store)",
                type(exc).__name__,
                exc,
            )
    n_failed = sum(g["failed"] for g in gen)
    summary = AuditSummary(
        run_id=run_id,
        store=Path(cfg.store),
        status="complete",
        questions=len(samples),
        failed_samples=n_failed,
        marks=len(marks),
        explained=sum(r["error"] is None for r in results),
        explain_failed=sum(r["error"] is not None for r in results),
        metrics=headline,
        report=report_path,
    )
    logger.info(
        "run %s complete: %d questions, %d marks, %d explanations (%d copied from cache)",
        run_id,
        len(samples),
        len(marks),
        len(results),
        copied,
    )
    return {
        **{k: (str(v) if isinstance(v, Path) else v) for k, v in summary.__dict__.items()},
        "generated": sum(g["rows"] for g in gen),
        "computed_explanations": sum(r["run_id"] == run_id for r in results),
    }


def pipeline_limit(cfg: AuditConfig, limit: int) -> str:
    """Create (or update) the global concurrency limit of this run's model endpoint."""
    from prefect.client.orchestration import get_client

    name = endpoint_limit_name(cfg)
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(name=name, limit=max(1, limit))
    return name


def _copy_cached(st: Store, run_id: str, results: list[dict[str, Any]]) -> int:
    """Explanations served from the task cache were computed by another run: copy their rows."""
    copied = 0
    for r in results:
        if r["run_id"] == run_id:
            continue
        rows = st.query(
            "SELECT * EXCLUDE (model, run_date) FROM explanations WHERE run_id = ? AND sample_id = ?",
            [r["run_id"], r["sample_id"]],
        ).to_pylist()
        for row in rows:
            row.pop("run_id", None)
            for extra in [k for k in row if k.startswith("_")]:
                row.pop(extra)
        if rows:
            copied += st.write("explanations", rows, run_id).rows_written
    return copied


def _write_report(st: Store, run_id: str) -> Path | None:
    import importlib.util

    if importlib.util.find_spec("reports.build") is None:
        return None
    from reports.build import build_report

    out = st.root / "reports" / f"{run_id}.html"
    path = build_report(st.root, run_id=run_id, out=out)
    create_link_artifact(
        key="audit-report",
        link=Path(path).resolve().as_uri(),
        description=f"HTML audit report of run {run_id}",
    )
    return Path(path)
