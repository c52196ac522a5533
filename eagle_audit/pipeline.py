"""The audit, step by step, without Prefect: load -> generate -> mark -> explain -> metrics.

Each public function is one step that a thin Prefect task in `flows/audit.py` calls; every step
reads what it needs from its arguments and writes its rows to the `Store` itself, so large arrays
never travel through orchestration results. Steps are idempotent within a run: rows whose keys a
run already stored are skipped (`Store.write`), and callers ask `Store.done_samples` first so
finished work is not recomputed after a crash.

Identifiers: a POPE question is the answers row `sample_id = "<split>/<question_id>"`. A unique
(image, question) pair is asked once; its answer is written for every (split, question id) where
the pair occurs. A hallucination is explained once per pair, under the pair's first sample id.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from auditors.annotations import AnnotationSet, Occurrence, load_annotations
from auditors.parsing import parse_yes_no
from eagle.types import Answer, Backend, GenerationRequest, ScoreRequest
from storage.store import RunRecord, Store

log = logging.getLogger(__name__)

METHOD_VERSION = "eagle-audit-1"  # part of every explanation cache key: bump when results change
ANSWER_TOKENS_METHOD = "answer-tokens"  # the answer's own tokens along the EAGLE order (modality colouring)
SPLITS = ("random", "popular", "adversarial")


class SampleError(Exception):
    """A sample that cannot be processed (e.g. a corrupt or missing image); recorded, not fatal."""


# ---------------------------------------------------------------------------------------------
# Configuration and data
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class AuditConfig:
    """Everything an audit run is parameterised by (the CLI and the deployment fill it in)."""

    store: Path
    dataset: str = "probe"  # "probe" | "repope"
    annotations: Path | None = None  # repope: directory with the POPE/RePOPE files
    images: Path | None = None  # repope: COCO val2014 image directory
    splits: tuple[str, ...] = SPLITS
    limit: int | None = None  # at most this many unique questions
    backend: str = "hf"
    model: str | None = None  # model directory (hf) or served model name (vllm-server)
    endpoint: tuple[str, ...] = ()
    explain: str = "all"  # "all" | "none" | a number of hallucinations to explain
    regions: int = 64
    search: str = "efficient"
    correction: bool = True
    seed: int = 0
    probe_images: int = 40  # size of the built-in probe world
    max_new_tokens: int = 8
    batch_size: int = 32  # questions per generation task
    run_id: str | None = None

    def __post_init__(self) -> None:
        if self.dataset not in ("probe", "repope"):
            raise ValueError(f"unknown dataset {self.dataset!r}; choose 'probe' or 'repope'")
        if self.dataset == "repope" and (self.annotations is None or self.images is None):
            raise ValueError(
                "--dataset repope needs --annotations DIR (the POPE/RePOPE files) "
                "and --images DIR (COCO val2014)"
            )
        bad = [s for s in self.splits if s not in SPLITS]
        if bad:
            raise ValueError(f"unknown split(s) {bad}; choose from {', '.join(SPLITS)}")
        if self.explain not in ("all", "none") and not (self.explain.isdigit()):
            raise ValueError(f"--explain must be 'all', 'none' or a number, got {self.explain!r}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"--limit must be positive, got {self.limit}")

    @property
    def explain_limit(self) -> int | None:
        """How many hallucinations to explain: None = all."""
        return None if self.explain == "all" else 0 if self.explain == "none" else int(self.explain)

    def to_json(self) -> dict[str, Any]:
        return {
            k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v)
            for k, v in asdict(self).items()
        }


@dataclass(frozen=True, kw_only=True)
class DataSource:
    """Where the questions and images of a run are, and what is known about the images."""

    name: str  # "probe" | "repope"
    annotations: Path
    images: Path
    ground_truth: Path | None = None  # probe world ground truth (boxes, masks)


@dataclass(frozen=True, kw_only=True)
class Sample:
    """One unique (image, question) pair to ask, with every (label set, split, id) it occurs as."""

    pair_id: str  # sample id of its first occurrence: where its explanation is written
    image: str
    question: str
    object_class: str
    occurrences: tuple[Occurrence, ...]

    def sample_ids(self) -> list[str]:
        return sorted({f"{o.split}/{o.question_id}" for o in self.occurrences}, key=self._order)

    @staticmethod
    def _order(sid: str) -> tuple[int, int]:
        split, qid = sid.split("/")
        return (SPLITS.index(split), int(qid))

    def label(self, label_set: str) -> str | None:
        for o in self.occurrences:
            if o.label_set == label_set:
                return o.label
        return None


def prepare_data(cfg: AuditConfig) -> DataSource:
    """The run's data: the user's RePOPE directories, or the built-in probe world, generated once
    per (seed, size) under the store (it is deterministic, so a re-run finds the same bytes)."""
    if cfg.dataset == "repope":
        assert cfg.annotations is not None and cfg.images is not None
        if not cfg.images.is_dir():
            raise ValueError(
                f"image directory {cfg.images} does not exist; pass the COCO val2014 folder with --images"
            )
        return DataSource(name="repope", annotations=cfg.annotations, images=cfg.images)
    from probe.world import write_world

    root = Path(cfg.store) / "datasets" / f"probe-seed{cfg.seed}-n{cfg.probe_images}"
    if not (root / "SHA256SUMS").exists():
        log.info("writing the probe world (%d scenes, seed %d) to %s", cfg.probe_images, cfg.seed, root)
        tmp = root.with_name(root.name + f".tmp-{time.time_ns()}")
        write_world(tmp, cfg.seed, cfg.probe_images, "heldout")
        try:
            tmp.rename(root)
        except OSError:  # another audit wrote it first: same bytes, keep theirs
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    return DataSource(
        name="probe", annotations=root, images=root / "images", ground_truth=root / "ground_truth.json"
    )


def load_samples(cfg: AuditConfig, data: DataSource) -> tuple[AnnotationSet, list[Sample]]:
    """Load and verify the annotations (raises on a malformed line, naming file and line, before
    any model call), keep the requested splits, dedupe, and apply --limit."""
    annotations = load_annotations(data.annotations)
    samples: list[Sample] = []
    for pair in annotations.pairs:
        occ = tuple(o for o in pair.occurrences if o.split in cfg.splits)
        if not occ:
            continue
        first = min(occ, key=lambda o: (SPLITS.index(o.split), o.question_id))
        q = annotations.question(first.label_set, first.split, first.question_id)
        obj = q.object if q is not None else pair.text
        samples.append(
            Sample(
                pair_id=f"{first.split}/{first.question_id}",
                image=pair.image,
                question=pair.text,
                object_class=obj,
                occurrences=occ,
            )
        )
    samples.sort(key=lambda s: Sample._order(s.pair_id))
    if cfg.limit is not None:
        samples = samples[: cfg.limit]
    return annotations, samples


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def model_digest(model: str | None) -> str | None:
    """sha256 of a local checkpoint's weights (the model's identity for caching and the run record)."""
    from probe.model import CHECKPOINT_DIR

    path = CHECKPOINT_DIR if model in (None, "probe") else Path(model)
    weights = sorted(path.glob("*.safetensors")) if path.is_dir() else []
    if not weights:
        return None
    h = hashlib.sha256()
    for w in weights:
        h.update(file_sha256(w).encode())
    return h.hexdigest()


def run_record(cfg: AuditConfig, data: DataSource, annotations: AnnotationSet, backend: Backend) -> RunRecord:
    """What is needed to reproduce the run: model and digest, engine, decoding, seed, data checksums, code."""
    from importlib.metadata import version

    info = backend.info() if hasattr(backend, "info") else {}
    if cfg.backend == "hf":
        import transformers

        engine = f"transformers {transformers.__version__}"
    else:  # what the engine says of itself, e.g. "vllm 0.32.0"
        engine = f"vllm {info.get('engine_version') or 'version unknown'}"
    checksums = {f.path.name: f.sha256 for f in annotations.files.values()}
    return RunRecord(
        run_id=cfg.run_id,
        model_id=backend.model_id,
        model_revision=model_digest(cfg.model)
        if cfg.backend != "vllm-server"
        else info.get("model_revision"),
        backend=cfg.backend,
        engine_version=engine,
        decoding={"temperature": 0.0, "max_new_tokens": cfg.max_new_tokens, "greedy": True},
        seed=cfg.seed,
        data_checksums=checksums,
        code_version=f"eagle-audit {version('eagle-audit')}",
        benchmark=f"{data.name}-pope",
        config=cfg.to_json() | {"image_root": str(data.images.resolve()), "backend_info": info},
    )


# ---------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------


def load_image(images: Path, name: str) -> np.ndarray:
    """An RGB uint8 image (H, W, 3); raises SampleError naming the file when it is missing or corrupt."""
    from PIL import Image, UnidentifiedImageError

    from auditors.annotations import image_path

    try:
        path = image_path(images, name)
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (FileNotFoundError, UnidentifiedImageError, OSError, ValueError) as exc:
        raise SampleError(f"cannot read image {name!r} in {images}: {exc}") from exc


# ---------------------------------------------------------------------------------------------
# The generate step
# ---------------------------------------------------------------------------------------------


def generate_answers(
    backend: Backend, data: DataSource, samples: Sequence[Sample], cfg: AuditConfig
) -> list[dict[str, Any]]:
    """Ask every sample once (batched) and return answers rows, one per (split, question id).

    A sample whose image cannot be read gets rows with `error` set and no answer."""
    requests, ok, failed = [], [], []
    for s in samples:
        try:
            requests.append(
                GenerationRequest(
                    image=load_image(data.images, s.image),
                    prompt=s.question,
                    max_new_tokens=cfg.max_new_tokens,
                    request_id=s.pair_id,
                )
            )
            ok.append(s)
        except SampleError as exc:
            log.warning("sample %s failed: %s", s.pair_id, exc)
            failed.append((s, str(exc)))
    start = time.perf_counter()
    answers = backend.generate(requests) if requests else []
    latency = (time.perf_counter() - start) / max(1, len(requests))
    rows: list[dict[str, Any]] = []
    now = dt.datetime.now(dt.UTC)
    for s, a in zip(ok, answers, strict=True):
        rows += _answer_rows(s, a, backend, latency, now)
    for s, err in failed:
        rows += _answer_rows(s, None, backend, None, now, error=err)
    return rows


def _answer_rows(
    s: Sample,
    a: Answer | None,
    backend: Backend,
    latency: float | None,
    now: dt.datetime,
    error: str | None = None,
) -> list[dict[str, Any]]:
    verdict = parse_yes_no(a.text) if a is not None else None
    rows = []
    for sid in s.sample_ids():
        split, qid = sid.split("/")
        labels = {
            o.label_set: o.label for o in s.occurrences if o.split == split and o.question_id == int(qid)
        }
        rows.append(
            {
                "sample_id": sid,
                "benchmark": "pope",
                "split": split,
                "question_id": int(qid),
                "image": s.image,
                "question": s.question,
                "object_class": s.object_class,
                "answer_text": a.text if a is not None else None,
                "verdict": verdict,
                "pope_label": labels.get("pope"),
                "repope_label": labels.get("repope"),
                "token_ids": list(a.token_ids) if a is not None else None,
                "tokens": [backend.decode([t]) for t in a.token_ids] if a is not None else None,
                "logprobs": list(a.logprobs) if a is not None else None,
                "finish_reason": a.finish_reason if a is not None else None,
                "error": error,
                "latency_s": latency,
                "answered_at": now,
            }
        )
    return rows


# ---------------------------------------------------------------------------------------------
# The mark step
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Target:
    """One hallucination to explain: the sample, the answer position and the counter token."""

    pair_id: str
    image: str
    question: str
    object_class: str
    answer_ids: tuple[int, ...]
    position: int
    token_id: int  # the answer's token at `position` (the hallucinated decision)
    counter_id: int  # the token EAGLE explains instead (the correct answer)
    counter_text: str
    truth: str  # the correct yes/no answer

    @property
    def question_id(self) -> int:
        """The question id within its split (pair ids are "split/question_id")."""
        return int(self.pair_id.split("/")[1])

    def cache_key(self, model: str | None, params: dict[str, Any], image_digest: str) -> str:
        """Key of this explanation across re-runs: (sample, image digest, model, method version, params)."""
        blob = json.dumps(
            [
                self.image,
                self.question,
                self.answer_ids,
                self.position,
                self.counter_id,
                image_digest,
                model,
                METHOD_VERSION,
                params,
            ],
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()


def mark_answers(
    answer_rows: Iterable[dict[str, Any]], backend: Backend
) -> tuple[list[dict[str, Any]], list[Target]]:
    """Marks rows for every yes/no verdict that disagrees with a label set, and the EAGLE targets
    (one per unique pair, RePOPE labels first, POPE where RePOPE has no label)."""
    from auditors.marking import TokenMarker

    tokenizer = getattr(backend, "tokenizer", None)
    marker = TokenMarker.from_tokenizer(tokenizer) if tokenizer is not None else None
    marks: list[dict[str, Any]] = []
    targets: dict[tuple[str, str], Target] = {}
    for row in sorted(answer_rows, key=lambda r: Sample._order(r["sample_id"])):
        if row.get("error") or row.get("answer_text") is None or not row.get("token_ids"):
            continue
        m = marker or TokenMarker.from_backend(backend, row["question"])
        for label_set in ("repope", "pope"):
            label = row.get(f"{label_set}_label")
            if label is None:
                continue
            mark = m.mark_yes_no(answer_ids=row["token_ids"], label=label)
            if mark is None:
                continue
            logprobs = row.get("logprobs") or []
            marks.append(
                {
                    "sample_id": row["sample_id"],
                    "token_index": mark.position,
                    "token_id": mark.token_id,
                    "token_text": mark.token_text,
                    "char_start": mark.decision[0],
                    "char_end": mark.decision[1],
                    "label_set": label_set,
                    "kind": mark.kind,
                    "object_class": row["object_class"],
                    "counter_token_id": mark.counter_id,
                    "counter_token_text": mark.counter_text,
                    "logprob": logprobs[mark.position] if mark.position < len(logprobs) else None,
                }
            )
            # A phrase decision ("There is no dog") has no counter token to explain.
            if mark.counter_id is None:
                continue
            key = (row["image"], row["question"])
            if key not in targets:
                targets[key] = Target(
                    pair_id=row["sample_id"],
                    image=row["image"],
                    question=row["question"],
                    object_class=row["object_class"],
                    answer_ids=tuple(row["token_ids"]),
                    position=mark.position,
                    token_id=mark.token_id,
                    counter_id=mark.counter_id,
                    counter_text=mark.counter_text or "",
                    truth=label,
                )
    # One explanation per pair, under its first sample id in split order.
    return marks, sorted(targets.values(), key=lambda t: Sample._order(t.pair_id))


# ---------------------------------------------------------------------------------------------
# The explain step
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ExplainSettings:
    regions: int = 64
    search: str = "efficient"
    correction: bool = True
    max_new_tokens: int = 8

    def params(self) -> dict[str, Any]:
        return asdict(self)


def explain_target(
    backend: Backend, data: DataSource, target: Target, settings: ExplainSettings, store: Store, run_id: str
) -> list[dict[str, Any]]:
    """Explain one hallucination with EAGLE (counter token), run the correction scan, save the map,
    and analyse the answer's own tokens along the same region order (which rest on the image, which
    on the prior). Returns the explanations rows (written by the caller)."""
    from eagle.correction import correction_scan
    from eagle.method import Eagle, explain_order
    from eagle.regions import SlicoSegmenter
    from eagle.search import EfficientSearch, ExactSearch
    from storage.rows import explanation_row

    image = load_image(data.images, target.image)
    regions = SlicoSegmenter(n_segments=settings.regions).segment(image)
    search = ExactSearch() if settings.search == "exact" else EfficientSearch()
    request = ScoreRequest(
        prompt=target.question,
        answer_ids=target.answer_ids,
        target_positions=(target.position,),
        target_ids=(target.counter_id,),
    )
    expl = Eagle(backend, search=search).explain(image, regions, request)
    ref = store.write_map(
        run_id, f"{target.pair_id.replace('/', '-')}-{expl.method}", expl.attribution_map.astype(np.float32)
    )
    row = explanation_row(
        expl.to_dict(include_labels=False),
        sample_id=target.pair_id,
        question_id=target.question_id,
        target_text=target.counter_text,
        search=settings.search,
        map_path=ref.path,
        map_sha256=ref.sha256,
        params=expl.params | settings.params(),
        error=None,
    )
    if settings.correction:
        regenerate = _regenerator(backend, target.question, settings.max_new_tokens)
        corr = correction_scan(image, regions, expl.order, regenerate, target.truth, matcher=parse_yes_no)
        row |= {
            "correction_area": corr.area_removed,
            "corrected": corr.corrected,
            "corrected_answer": corr.answers[-1] if corr.corrected else None,
            "correction_curve": [float(parse_yes_no(a) == target.truth) for a in corr.answers],
        }
    answer = ScoreRequest(
        prompt=target.question,
        answer_ids=target.answer_ids,
        target_positions=tuple(range(len(target.answer_ids))),
        target_ids=target.answer_ids,
    )
    tokens = explain_order(backend, image, regions, answer, expl.order, method=ANSWER_TOKENS_METHOD)
    answer_row = explanation_row(
        tokens.to_dict(include_labels=False),
        sample_id=target.pair_id,
        question_id=target.question_id,
        target_text=backend.decode(target.answer_ids),
        search="order-of:" + expl.method,
        params=tokens.params | settings.params(),
        error=None,
    )
    return [row, answer_row]


def _regenerator(backend: Backend, prompt: str, max_new_tokens: int) -> Callable[[np.ndarray], list[str]]:
    def regenerate(images: np.ndarray) -> list[str]:
        reqs = [GenerationRequest(image=im, prompt=prompt, max_new_tokens=max_new_tokens) for im in images]
        return [a.text for a in backend.generate(reqs)]

    return regenerate


def failed_explanation_row(target: Target, settings: ExplainSettings, error: str) -> dict[str, Any]:
    return {
        "sample_id": target.pair_id,
        "question_id": target.question_id,
        "target_text": target.counter_text,
        "target_position": target.position,
        "target_token_id": target.counter_id,
        "method": f"eagle-{settings.search}",
        "search": settings.search,
        "params": json.dumps(settings.params(), sort_keys=True),
        "error": error,
    }


# ---------------------------------------------------------------------------------------------
# The metrics step
# ---------------------------------------------------------------------------------------------


def metrics_rows(
    annotations: AnnotationSet, answer_rows: Iterable[dict[str, Any]], splits: Sequence[str]
) -> list[dict[str, Any]]:
    """Confusion metrics per split (and all), label set and object class (and all), from the
    stored answers; unparsed answers counted, failed samples left out of n."""
    from auditors.benchmarks.pope import score

    answers = {
        (r["split"], int(r["question_id"])): r["answer_text"]
        for r in answer_rows
        if r.get("answer_text") is not None
    }
    report = score(annotations, answers)
    rows: list[dict[str, Any]] = []
    for label_set, per_split in report.confusion.items():
        for split in [*splits, "all"]:
            conf = per_split.get(split)
            if conf is None or conf.n == 0:
                continue
            ci = report.intervals(label_set, split, metrics=("accuracy", "f1"), n_boot=500)  # type: ignore[arg-type]
            rows.append(_metric_row(label_set, split, "all", conf, ci))
            for cls, c in sorted(report.per_class(label_set, split).items()):  # type: ignore[arg-type]
                rows.append(_metric_row(label_set, split, cls, c, None))
    return rows


def _metric_row(label_set: str, split: str, cls: str, c: Any, ci: dict[str, Any] | None) -> dict[str, Any]:
    """One metrics row; `ci` holds image-clustered bootstrap intervals (95%) for the "all" rows.
    accuracy_se is the normal-approximation standard error read off the interval: width / 3.92."""
    extra: dict[str, float] = {}
    se = None
    for name, iv in (ci or {}).items():
        if iv.low is not None and iv.high is not None:
            extra[f"{name}_ci_low"] = iv.low
            extra[f"{name}_ci_high"] = iv.high
            if name == "accuracy":
                se = (iv.high - iv.low) / 3.92
    from storage.rows import metrics_row

    return metrics_row(
        c, benchmark="pope", split=split, label_set=label_set, object_class=cls, accuracy_se=se, extra=extra
    )


@dataclass(frozen=True, kw_only=True)
class AuditSummary:
    run_id: str
    store: Path
    status: str
    questions: int
    failed_samples: int
    marks: int
    explained: int
    explain_failed: int
    metrics: list[dict[str, Any]] = field(default_factory=list)
    report: Path | None = None
