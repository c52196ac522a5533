"""`run_audit`: one audit run, start to end, without Prefect.

    result = run_audit(AuditConfig(store=Path("store")))          # the probe world, the probe model
    print(result.status, result.metrics)

The engine owns the run's policy; the steps (`audit.data`, `.generate`, `.mark`, `.explain`,
`.metrics`) only compute. What the engine decides:

- **Resume**: the store is the only memory. A run id that exists and is not complete is resumed
  (the store checks that the settings that decide the answers match); answered questions and
  explained targets the run already stored are skipped.
- **Reuse**: an explanation with the same key (sample, image digest, model weights digest, method
  version, settings) stored by another run *of the same store* is copied, not recomputed. A served
  model has no weights digest, so its explanations are reused only within their run.
- **Writes**: every row goes through one `BufferedWriter` in this process: a part file per flush,
  not per row, with the run's keys loaded once. A crash loses at most the unflushed rows.
- **Failure**: samples whose image cannot be read (or whose explanation fails) are recorded and the
  run goes on; when their share exceeds `max_failed_share` the run ends `failed`. Model access
  errors end the run `failed` at once. Either way the status is written before the report, so the
  report shows it.
- **Concurrency**: a `Runner` runs the step jobs (inline, threads, Prefect tasks, Dask), with at
  most `explain_concurrency` in flight; no bound lives outside this process.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from audit.backend import backend_for, model_id, weights_digest
from audit.config import AuditConfig, check_inputs
from audit.data import file_digest, image_digest, load_items, prepare_data, sample_order
from audit.explain import ANSWER_TOKENS_METHOD, ExplainJob, ExplainSettings, explain, explanation_key
from audit.generate import GenerateJob, batches, generate
from audit.mark import mark_answers
from audit.metrics import headline, metrics_rows
from audit.record import run_record
from audit.runner import LocalRunner, Runner
from auditors.benchmarks.base import BenchmarkData, DataSource, Item, Target
from storage.buffer import BufferedWriter
from storage.duckdb_errors import interrupt_behind
from storage.store import Store

log = logging.getLogger("audit")


@dataclass(frozen=True, kw_only=True)
class AuditResult:
    """What a run did. `status` is the run's final stored status ("complete" or "failed")."""

    run_id: str
    store: Path
    status: str
    error: str | None = None
    benchmark: str = "pope"
    questions: int = 0  # items of the run: unique (image, prompt) pairs asked once
    generated: int = 0  # answers rows written by this attempt
    failed_samples: int = 0  # items whose image could not be read (over the whole run)
    marks: int = 0
    targets: int = 0  # hallucinations selected for explanation
    explained: int = 0  # targets with an explanation (computed, reused or from an earlier attempt)
    explain_failed: int = 0
    computed_explanations: int = 0  # computed by this attempt
    reused_explanations: int = 0  # copied from another run of the store
    metrics: list[dict[str, Any]] = field(default_factory=list)  # "all"-class rows, the benchmark's headline
    report: Path | None = None
    wall_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items()}


class AuditFailed(RuntimeError):
    """The run ended `failed` (too many failed samples, or a model access error); `result` holds
    what it did. The run's status and error are in the store."""

    def __init__(self, result: AuditResult) -> None:
        super().__init__(result.error or f"run {result.run_id} failed")
        self.result = result


Progress = Callable[[str, int, int], None]  # (step, done, total)


def describe_failure(exc: BaseException) -> str:
    """The run record's error for an exception; an interrupt (Ctrl-C, or SIGTERM turned into an
    exception by the CLI or by Prefect's flow engine) says so, with its signal when it has one."""
    text = f"{type(exc).__name__}: {exc}".removesuffix(": ")
    signum = getattr(exc, "signal", None)
    if isinstance(signum, int) and str(signum) not in text:
        text += f" (signal {signum})"
    return text if isinstance(exc, Exception) else f"interrupted: {text}"


def run_audit(
    config: AuditConfig,
    *,
    runner: Runner | None = None,
    progress: Progress | None = None,
    buffer_rows: int = 256,
    buffer_seconds: float = 30.0,
) -> AuditResult:
    """Run (or resume) the audit `config` describes and return what it did.

    Raises ConfigError or AnnotationError before any model call when an input is wrong, and
    AuditFailed when the run ends `failed` (its result attached). `runner` executes the generate and
    explain jobs (default: in this process, `explain_concurrency` threads)."""
    start = time.perf_counter()
    runner = runner or LocalRunner()
    check_inputs(config)
    data = prepare_data(config)
    # a malformed line stops the run here, before any model call
    benchmark, loaded, items, sampling = load_items(config, data)
    log.info(
        "%s: %d questions (%s) from %s: %d items to ask",
        benchmark.name, sampling.questions, ", ".join(config.splits),
        data.annotations or data.images, len(items),
    )  # fmt: skip
    backend = backend_for(config)
    digest = weights_digest(config)
    info = backend.info() if hasattr(backend, "info") else {}
    record = run_record(
        config,
        data,
        loaded,
        items,
        sampling,
        model_id=model_id(config, backend),
        weights_digest=digest,
        backend_info=info,
    )
    store = Store(config.store)
    run_id = store.begin_run(record)
    config = replace(config, run_id=run_id)
    log.info("run %s: model %s via %s, store %s", run_id, record.model_id, config.backend, store.root)
    run = _Run(
        config=config,
        data=data,
        benchmark=benchmark,
        loaded=loaded,
        store=store,
        runner=runner,
        progress=progress or ProgressLog(),
    )
    try:
        with BufferedWriter(store, run_id, max_rows=buffer_rows, max_seconds=buffer_seconds) as out:
            run.generate(items, out)
            out.flush()
            targets = run.mark(items, backend, out)
            out.flush()
            # the weights and the dtype they run in decide the scores (reuse across runs)
            served = f"{config.model or 'served'}@run:{run_id}"
            model_identity = f"{digest}:{info.get('dtype')}" if digest else served
            run.explain(targets, model_identity, out)
        answers = stored_answers(store, run_id)
        order = sample_order(items)  # the run's order, not the store's: bootstrap intervals depend on it
        in_order = sorted(answers, key=lambda r: order.get(r["sample_id"], (len(order), 0)))
        metrics = metrics_rows(benchmark, loaded, in_order, config.splits)
        store.write("metrics", metrics, run_id)
        failed_samples = len({a["image"] + "\0" + a["question"] for a in answers if a["error"] is not None})
        explain_rows = run.explanation_rows()
        explained = sum(r["error"] is None for r in explain_rows)
        explain_failed = len(explain_rows) - explained
        error = failure_verdict(
            samples=len(items),
            failed_samples=failed_samples,
            explanations=len(explain_rows),
            failed_explanations=explain_failed,
            max_share=config.max_failed_share,
            first_error=next((a["error"] for a in answers if a["error"]), None)
            or next((r["error"] for r in explain_rows if r["error"]), None),
        )
        status = "failed" if error else "complete"
        store.finish_run(run_id, status, error=error)  # an interrupt in here still closes the run
    except BaseException as exc:
        ended_by = interrupt_behind(exc)  # an interrupt a DuckDB query turned into its own error
        cause = describe_failure(ended_by)
        log.error("run %s failed: %s", run_id, cause)
        try:
            store.finish_run(run_id, "failed", error=cause)
        except Exception as close_error:  # noqa: BLE001 - e.g. disk full: keep the original error
            log.error("could not record run %s as failed: %s", run_id, close_error)
        store.close()  # the attempt is over: its lock goes even when its status could not be written
        if ended_by is not exc:
            raise ended_by from exc
        raise
    report = write_report(store, run_id) if config.report else None
    result = AuditResult(
        run_id=run_id,
        store=store.root,
        status=status,
        error=error,
        benchmark=benchmark.name,
        questions=len(items),
        generated=run.generated,
        failed_samples=failed_samples,
        marks=run.marks,
        targets=run.targets,
        explained=explained,
        explain_failed=explain_failed,
        computed_explanations=run.computed,
        reused_explanations=run.reused,
        metrics=headline(benchmark, metrics),
        report=report,
        wall_s=time.perf_counter() - start,
    )
    log.info(
        "run %s %s: %d questions (%d failed), %d marks, %d explanations (%d computed, %d reused)",
        run_id, status, result.questions, failed_samples, result.marks, explained, run.computed, run.reused,
    )  # fmt: skip
    if status == "failed":
        raise AuditFailed(result)
    return result


def failure_verdict(
    *,
    samples: int,
    failed_samples: int,
    explanations: int,
    failed_explanations: int,
    max_share: float,
    first_error: str | None,
) -> str | None:
    """Why the run fails (None: it does not): failed samples or failed explanations above the share."""
    problems = []
    if samples == 0:
        problems.append("the run has no questions")
    elif failed_samples / samples > max_share:
        problems.append(f"{failed_samples} of {samples} samples failed ({failed_samples / samples:.0%})")
    if explanations and failed_explanations / explanations > max_share:
        problems.append(
            f"{failed_explanations} of {explanations} explanations failed "
            f"({failed_explanations / explanations:.0%})"
        )
    if not problems:
        return None
    first = f"; first error: {first_error}" if first_error else ""
    return f"{' and '.join(problems)}, more than --max-failed-share {max_share:g}{first}"


def stored_answers(store: Store, run_id: str) -> list[dict[str, Any]]:
    """The run's answers rows as the steps wrote them (the label-set maps as dicts)."""
    rows = store.query("SELECT * FROM answers WHERE run_id = ?", [run_id]).to_pylist()
    for r in rows:
        for name in ("labels", "outcomes"):
            r[name] = dict(r[name]) if r[name] is not None else None
    return rows


def write_report(store: Store, run_id: str) -> Path | None:
    """The HTML report of the run (derived from the store: a failure here loses no data)."""
    from reports.build import build_report

    try:
        return Path(build_report(store.root, run_id=run_id, out=store.root / "reports" / f"{run_id}.html"))
    except Exception as exc:  # noqa: BLE001 - the run's data is complete; the report can be rebuilt
        log.warning("could not write the HTML report: %s: %s (rebuild it with `eagle-audit report`)",
                    type(exc).__name__, exc)  # fmt: skip
        return None


class ProgressLog:
    """Logs a step's progress each time it passes another tenth of its total (one per run)."""

    def __init__(self) -> None:
        self._tenth: dict[str, int] = {}

    def __call__(self, step: str, done: int, total: int) -> None:
        tenth = 10 * done // max(1, total)
        if tenth > self._tenth.get(step, -1):
            self._tenth[step] = tenth
            log.info("%s: %d/%d", step, done, total)


@dataclass(kw_only=True)
class _Run:
    """The steps of one run, with the counters they leave for the result."""

    config: AuditConfig
    data: DataSource
    benchmark: Any
    loaded: BenchmarkData
    store: Store
    runner: Runner
    progress: Progress
    generated: int = 0
    marks: int = 0
    targets: int = 0
    computed: int = 0
    reused: int = 0

    @property
    def run_id(self) -> str:
        assert self.config.run_id is not None
        return self.config.run_id

    def _window(self) -> int:
        return self.config.explain_concurrency

    def generate(self, items: Sequence[Item], out: BufferedWriter) -> None:
        done = self.store.done_samples(self.run_id, "answers")
        todo = [i for i in items if not {s.sample_id for s in i.samples} <= done]
        log.info("generate: %d items to ask, %d already answered", len(todo), len(items) - len(todo))
        jobs = [
            GenerateJob(config=self.config, data=self.data, benchmark=self.benchmark, items=b)
            for b in batches(todo, self.config.batch_size)
        ]
        # One model in this process answers one batch at a time; servers take several.
        window = self._window() if self.config.backend == "vllm-server" else 1
        asked = 0
        for job, rows in self.runner.map(generate, jobs, name="generate", window=window):
            out.add("answers", rows)
            self.generated += len(rows)
            asked += len(job.items)
            self.progress("generate", asked, len(todo))

    def mark(self, items: Sequence[Item], backend: Any, out: BufferedWriter) -> list[Target]:
        answers = stored_answers(self.store, self.run_id)
        marks, targets = mark_answers(self.benchmark, items, answers, backend)
        out.add("marks", marks)
        self.marks = len(marks)
        limit = self.config.explain_limit
        targets = targets if limit is None else targets[:limit]
        self.targets = len(targets)
        log.info("mark: %d marked tokens, %d hallucinations to explain", len(marks), len(targets))
        return targets

    def explain(self, targets: Sequence[Target], model_identity: str, out: BufferedWriter) -> None:
        settings = ExplainSettings.of(self.config)
        done = {
            (k[0], k[2])
            for k in self.store.done_keys(self.run_id, "explanations")
            if k[1] != ANSWER_TOKENS_METHOD
        }
        tokens_done = {
            k[0] for k in self.store.done_keys(self.run_id, "explanations") if k[1] == ANSWER_TOKENS_METHOD
        }
        pending = [t for t in targets if (t.sample_id, t.position) not in done]
        digests: dict[str, str] = {}  # several questions share an image: hash each file once
        masks = self._masks_identity()
        jobs = []
        for t in pending:
            if t.image not in digests:
                digests[t.image] = image_digest(self.data.images, t.image)
            # the answer's own tokens are re-scored once per sample (along its first target's order)
            answer_tokens = t.sample_id not in tokens_done
            tokens_done.add(t.sample_id)
            key = explanation_key(
                t,
                model=model_identity,
                image_digest=digests[t.image],
                settings=settings,
                masks=masks,
                answer_tokens=answer_tokens,
            )
            jobs.append(
                ExplainJob(
                    config=self.config,
                    data=self.data,
                    benchmark=self.benchmark,
                    target=t,
                    settings=settings,
                    run_id=self.run_id,
                    key=key,
                    answer_tokens=answer_tokens,
                )
            )
        stored = self.store.find_explanations([j.key for j in jobs], exclude_run=self.run_id)
        compute = []
        for job in jobs:
            rows = stored.get(job.key)
            if rows:
                out.add("explanations", rows)
                self.reused += 1
            else:
                compute.append(job)
        log.info(
            "explain: %d to compute, %d reused from earlier runs, %d already explained in this run",
            len(compute), self.reused, len(targets) - len(pending),
        )  # fmt: skip
        for i, (_job, rows) in enumerate(
            self.runner.map(explain, compute, name="explain", window=self._window()), 1
        ):
            out.add("explanations", rows)
            self.computed += 1
            self.progress("explain", i, len(compute))

    def _masks_identity(self) -> str | None:
        """What the driver regions are matched to: the mask source's kind and file digest."""
        source = self.data.masks
        if source is None:
            return None
        path = self.data.ground_truth if source.kind == "probe" else self.data.instances
        return f"{source.kind}:{file_digest(path)}"

    def explanation_rows(self) -> list[dict[str, Any]]:
        """The run's EAGLE explanation rows (not the answer-tokens rows): sample, error."""
        return self.store.query(
            "SELECT sample_id, error FROM explanations WHERE run_id = ? AND method <> ?",
            [self.run_id, ANSWER_TOKENS_METHOD],
        ).to_pylist()


__all__ = ["AuditFailed", "AuditResult", "failure_verdict", "run_audit", "write_report"]
