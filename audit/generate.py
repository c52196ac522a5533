"""The generate step: ask a batch of items once and turn each answer into answers rows, one per
sample the item is scored as, read by the benchmark (`judge`: verdict and outcome per label set).
A sample whose image cannot be read gets rows with `error` set and no answer; the run goes on."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from audit.backend import backend_for
from audit.config import AuditConfig
from audit.data import SampleError, load_image
from auditors.benchmarks.base import DataSource, Item
from eagle.types import Answer, Backend, GenerationRequest

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class GenerateJob:
    """One batch of items: everything a worker process needs (picklable, no open handles)."""

    config: AuditConfig
    data: DataSource
    benchmark: Any  # the `auditors.benchmarks.base.Benchmark` plug-in
    items: tuple[Item, ...]


def generate(job: GenerateJob) -> list[dict[str, Any]]:
    """Answer every item of the job (one batched call) and return its answers rows."""
    backend = backend_for(job.config)
    requests, ok, failed = [], [], []
    for item in job.items:
        try:
            image = load_image(job.data.images, item.image)
        except SampleError as exc:
            log.warning("sample %s failed: %s", item.item_id, exc)
            failed.append((item, str(exc)))
            continue
        requests.append(
            GenerationRequest(
                image=image,
                prompt=item.prompt,
                max_new_tokens=job.config.answer_tokens,
                request_id=item.item_id,
            )
        )
        ok.append(item)
    start = time.perf_counter()
    answers = backend.generate(requests) if requests else []
    latency = (time.perf_counter() - start) / max(1, len(requests))
    now = dt.datetime.now(dt.UTC)
    rows: list[dict[str, Any]] = []
    for item, a in zip(ok, answers, strict=True):
        rows += answer_rows(job.benchmark, item, a, backend, latency, now)
    for item, err in failed:
        rows += answer_rows(job.benchmark, item, None, backend, None, now, error=err)
    return rows


def answer_rows(
    benchmark: Any,
    item: Item,
    a: Answer | None,
    backend: Backend,
    latency: float | None,
    now: dt.datetime,
    error: str | None = None,
) -> list[dict[str, Any]]:
    """The answers rows of one item: the same answer under each of its samples, judged per sample."""
    tokens = [backend.decode([t]) for t in a.token_ids] if a is not None else None
    rows = []
    for sample in item.samples:
        judged = benchmark.judge(item, sample, a.text) if a is not None else None
        rows.append(
            {
                "sample_id": sample.sample_id,
                "benchmark": benchmark.name,
                "split": sample.split,
                "question_id": sample.question_id,
                "image": item.image,
                "question": item.prompt,
                "object_class": item.object_class,
                "answer_text": a.text if a is not None else None,
                "verdict": judged.verdict if judged is not None else None,
                "labels": dict(sample.labels),
                "outcomes": dict(judged.outcomes) if judged is not None else None,
                "token_ids": list(a.token_ids) if a is not None else None,
                "tokens": tokens,
                "logprobs": list(a.logprobs) if a is not None else None,
                "finish_reason": a.finish_reason if a is not None else None,
                "error": error,
                "latency_s": latency,
                "answered_at": now,
            }
        )
    return rows


def batches(items: Sequence[Item], size: int) -> list[tuple[Item, ...]]:
    return [tuple(items[i : i + size]) for i in range(0, len(items), size)]
