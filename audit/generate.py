"""The generate step: ask a batch of unique questions once and turn each answer into answers rows,
one per (split, question id) where the pair occurs. A sample whose image cannot be read gets rows
with `error` set and no answer; the run goes on."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from audit.backend import backend_for
from audit.config import AuditConfig
from audit.data import DataSource, Sample, SampleError, load_image, split_sample_id
from auditors.parsing import parse_yes_no
from eagle.types import Answer, Backend, GenerationRequest

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class GenerateJob:
    """One batch of questions: everything a worker process needs (picklable, no open handles)."""

    config: AuditConfig
    data: DataSource
    samples: tuple[Sample, ...]


def generate(job: GenerateJob) -> list[dict[str, Any]]:
    """Answer every sample of the job (one batched call) and return its answers rows."""
    backend = backend_for(job.config)
    requests, ok, failed = [], [], []
    for s in job.samples:
        try:
            image = load_image(job.data.images, s.image)
        except SampleError as exc:
            log.warning("sample %s failed: %s", s.pair_id, exc)
            failed.append((s, str(exc)))
            continue
        requests.append(
            GenerationRequest(
                image=image, prompt=s.question, max_new_tokens=job.config.max_new_tokens, request_id=s.pair_id
            )
        )
        ok.append(s)
    start = time.perf_counter()
    answers = backend.generate(requests) if requests else []
    latency = (time.perf_counter() - start) / max(1, len(requests))
    now = dt.datetime.now(dt.UTC)
    rows: list[dict[str, Any]] = []
    for s, a in zip(ok, answers, strict=True):
        rows += answer_rows(s, a, backend, latency, now)
    for s, err in failed:
        rows += answer_rows(s, None, backend, None, now, error=err)
    return rows


def answer_rows(
    s: Sample,
    a: Answer | None,
    backend: Backend,
    latency: float | None,
    now: dt.datetime,
    error: str | None = None,
) -> list[dict[str, Any]]:
    """The answers rows of one sample: the same answer under each of its (split, question id)."""
    verdict = parse_yes_no(a.text) if a is not None else None
    tokens = [backend.decode([t]) for t in a.token_ids] if a is not None else None
    rows = []
    for sid in s.sample_ids():
        split, qid = split_sample_id(sid)
        labels = s.labels(sid)
        rows.append(
            {
                "sample_id": sid,
                "benchmark": "pope",
                "split": split,
                "question_id": qid,
                "image": s.image,
                "question": s.question,
                "object_class": s.object_class,
                "answer_text": a.text if a is not None else None,
                "verdict": verdict,
                "pope_label": labels.get("pope"),
                "repope_label": labels.get("repope"),
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


def batches(samples: Sequence[Sample], size: int) -> list[tuple[Sample, ...]]:
    return [tuple(samples[i : i + size]) for i in range(0, len(samples), size)]
