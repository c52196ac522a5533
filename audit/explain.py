"""The explain step: EAGLE explains one hallucination, the correction scan regenerates the answer
with the lowest-ranked regions removed (AMCR, CSR@10%), and the answer's own tokens are re-scored
along the same region order (which tokens rest on the image, which on the prior). Where the data
has object masks, the driver regions (the top of 1 − map) are matched to the objects under them
(`auditors.causes`). The map goes to the store as a .npy file; the rows go back to the engine.

What is explained is the target's: a yes/no error's counter token (objective "tokens"), or the
absence of a caption mention's span (objective "span-absence", `eagle.objectives`). Either way the
regions ranked last drive the hallucination, and the benchmark says when a regenerated answer is
corrected.

An explanation is identified across runs of one store by `explanation_key`: (sample, image
digest, model identity, object masks, method version, settings). The engine reuses a stored
explanation with the same key instead of computing it again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from audit.backend import backend_for
from audit.config import AuditConfig
from audit.data import SampleError, load_image
from auditors.benchmarks.base import DataSource, Target
from eagle.search import DEFAULT_SEARCH
from eagle.types import Backend, GenerationRequest, ScoreRequest

log = logging.getLogger(__name__)

METHOD_VERSION = "eagle-audit-2"  # part of every explanation key: bump when results change
ANSWER_TOKENS_METHOD = "answer-tokens"  # the answer's own tokens along the EAGLE order


@dataclass(frozen=True, kw_only=True)
class ExplainSettings:
    regions: int = 64
    search: str = DEFAULT_SEARCH
    correction: bool = True
    max_new_tokens: int = 8  # answer length of the correction scan's regenerations

    @classmethod
    def of(cls, config: AuditConfig) -> ExplainSettings:
        return cls(
            regions=config.regions,
            search=config.search,
            correction=config.correction,
            max_new_tokens=config.answer_tokens,
        )

    def params(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def method(self) -> str:
        return f"eagle-{self.search}"


def explanation_key(
    target: Target,
    *,
    model: str,
    image_digest: str,
    settings: ExplainSettings,
    masks: str | None = None,
    answer_tokens: bool = True,
) -> str:
    """The identity of an explanation across runs: same key, same result. `masks` identifies the
    object masks its driver regions were matched to (None: no masks); `answer_tokens` whether the
    answer-tokens row is part of it."""
    blob = json.dumps(
        [
            target.image,
            target.prompt,
            target.answer_ids,
            target.positions,
            target.target_ids,
            target.objective,
            target.truth,
            image_digest,
            model,
            masks,
            answer_tokens,
            METHOD_VERSION,
            settings.params(),
        ],
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass(frozen=True, kw_only=True)
class ExplainJob:
    """One hallucination to explain: everything a worker process needs (picklable)."""

    config: AuditConfig
    data: DataSource
    benchmark: Any  # the `auditors.benchmarks.base.Benchmark` plug-in (says when an answer is corrected)
    target: Target
    settings: ExplainSettings
    run_id: str
    key: str
    answer_tokens: bool = True  # also re-score the answer's own tokens (once per sample suffices)


def explain(job: ExplainJob) -> list[dict[str, Any]]:
    """The explanations rows of one target (the EAGLE row and the answer-tokens row), or one row
    with `error` set when this sample cannot be explained. Model access errors (a server down after
    the backend's retries) propagate: they are the run's failure, not the sample's."""
    from eagle.backends.errors import BackendError

    try:
        rows = explain_target(backend_for(job.config), job)
    except SampleError as exc:
        rows = [failed_row(job.target, job.settings, str(exc))]
    except BackendError:
        raise
    except Exception as exc:  # noqa: BLE001 - one sample's failure is recorded, the run goes on
        log.warning("explanation of %s failed: %s: %s", job.target.sample_id, type(exc).__name__, exc)
        rows = [failed_row(job.target, job.settings, f"{type(exc).__name__}: {exc}")]
    return [row | {"cache_key": job.key} for row in rows]


def explain_target(backend: Backend, job: ExplainJob) -> list[dict[str, Any]]:
    from eagle.correction import correction_scan
    from eagle.method import Eagle, explain_order
    from eagle.objectives import objective_scorer
    from eagle.regions import SlicoSegmenter
    from eagle.search import search_by_name
    from storage.rows import explanation_row
    from storage.store import Store

    target, settings = job.target, job.settings
    image = load_image(job.data.images, target.image)
    regions = SlicoSegmenter(n_segments=settings.regions).segment(image)
    search = search_by_name(settings.search)
    request = ScoreRequest(
        prompt=target.prompt,
        answer_ids=target.answer_ids,
        target_positions=target.positions,
        target_ids=target.target_ids,
    )
    scorer = objective_scorer(backend, target.objective)  # type: ignore[arg-type]
    expl = Eagle(scorer, search=search).explain(image, regions, request)
    # A unique name: a recomputed explanation (after a crash) never collides with an orphaned map.
    name = f"{target.sample_id.replace('/', '-')}-{target.position}-{expl.method}-{uuid.uuid4().hex[:8]}"
    ref = Store(job.config.store).write_map(job.run_id, name, expl.attribution_map.astype(np.float32))
    row = explanation_row(
        expl.to_dict(include_labels=False),
        sample_id=target.sample_id,
        question_id=target.question_id,
        target_text=target.target_text,
        search=settings.search,
        map_path=ref.path,
        map_sha256=ref.sha256,
        params=expl.params | settings.params(),
        error=None,
        objective=target.objective,
        label_set=target.label_set,
        drivers=_drivers(job.data, target.image, expl.order, expl.region_scores, regions),
    )
    if settings.correction:

        def corrected(answer: str) -> bool:
            return bool(job.benchmark.corrected(target, answer))

        regenerate = _regenerator(backend, target.prompt, settings.max_new_tokens)
        corr = correction_scan(image, regions, expl.order, regenerate, corrected)
        row |= {
            "correction_area": corr.area_removed,
            "corrected": corr.corrected,
            "corrected_answer": corr.answers[-1] if corr.corrected else None,
            "correction_curve": [float(corrected(a)) for a in corr.answers],
        }
    if not job.answer_tokens:
        return [row]
    answer = ScoreRequest(
        prompt=target.prompt,
        answer_ids=target.answer_ids,
        target_positions=tuple(range(len(target.answer_ids))),
        target_ids=target.answer_ids,
    )
    tokens = explain_order(backend, image, regions, answer, expl.order, method=ANSWER_TOKENS_METHOD)
    answer_row = explanation_row(
        tokens.to_dict(include_labels=False),
        sample_id=target.sample_id,
        question_id=target.question_id,
        target_text=backend.decode(target.answer_ids),
        search="order-of:" + expl.method,
        params=tokens.params | settings.params() | {"order_of_position": target.position},
        error=None,
        objective="tokens",
        label_set=target.label_set,
    )
    return [row, answer_row]


def _drivers(
    data: DataSource, image: str, order: np.ndarray, region_scores: np.ndarray, regions: np.ndarray
) -> list[dict[str, Any]] | None:
    """The image's ground-truth objects scored by the explanation; None where the data has no masks."""
    from auditors.causes import drivers
    from auditors.groundtruth import load_masks

    masks = load_masks(data.masks, image)
    if masks is None:
        return None
    if masks.labels.shape != regions.shape:
        log.warning(
            "object masks of %s are %s, the image %s: no drivers", image, masks.labels.shape, regions.shape
        )
        return None
    return [d.to_row() for d in drivers(order, regions, masks, region_scores)]


def _regenerator(backend: Backend, prompt: str, max_new_tokens: int) -> Callable[[np.ndarray], list[str]]:
    def regenerate(images: np.ndarray) -> list[str]:
        reqs = [GenerationRequest(image=im, prompt=prompt, max_new_tokens=max_new_tokens) for im in images]
        return [a.text for a in backend.generate(reqs)]

    return regenerate


def failed_row(target: Target, settings: ExplainSettings, error: str) -> dict[str, Any]:
    """The row of an explanation that could not be computed (its sample's image is unreadable)."""
    return {
        "sample_id": target.sample_id,
        "question_id": target.question_id,
        "target_text": target.target_text,
        "target_position": target.position,
        "target_token_id": target.target_ids[0],
        "target_positions": list(target.positions),
        "target_ids": list(target.target_ids),
        "method": settings.method,
        "search": settings.search,
        "params": json.dumps(settings.params(), sort_keys=True),
        "objective": target.objective,
        "label_set": target.label_set,
        "error": error,
    }
