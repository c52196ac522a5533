"""The load step: where a run's questions and images are, and the unique questions to ask.

Identifiers: a POPE question is the answers row `sample_id = "<split>/<question_id>"`. A unique
(image, question) pair is asked once; its answer is written for every (split, question id) where
the pair occurs. A hallucination is explained once per pair, under the pair's first sample id
(its `pair_id`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from audit.config import AuditConfig
from audit.sampling import Sampling, stratified_sample
from auditors.annotations import SPLITS, AnnotationSet, Occurrence, image_path, load_annotations
from eagle.types import RGBImage

log = logging.getLogger(__name__)


class SampleError(Exception):
    """A sample that cannot be processed (a corrupt or missing image): recorded, not fatal."""


@dataclass(frozen=True, kw_only=True)
class DataSource:
    """Where the questions and images of a run are."""

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
        return sorted({f"{o.split}/{o.question_id}" for o in self.occurrences}, key=sample_order)

    def labels(self, sample_id: str) -> dict[str, str]:
        """label set -> label of one of this pair's sample ids."""
        split, qid = split_sample_id(sample_id)
        return {o.label_set: o.label for o in self.occurrences if o.split == split and o.question_id == qid}


def split_sample_id(sample_id: str) -> tuple[str, int]:
    """ "popular/12" -> ("popular", 12)."""
    split, _, qid = sample_id.partition("/")
    return split, int(qid)


def sample_order(sample_id: str) -> tuple[int, int]:
    """Sort key of sample ids: split order, then question id."""
    split, qid = split_sample_id(sample_id)
    return (SPLITS.index(split), qid)  # type: ignore[arg-type]


def prepare_data(config: AuditConfig) -> DataSource:
    """The run's data: the user's POPE/RePOPE directories, or the built-in probe world (written
    once per seed and size under the store; it is deterministic, so a resume finds the same bytes)."""
    if config.dataset == "repope":
        assert config.annotations is not None and config.images is not None
        return DataSource(name="repope", annotations=config.annotations, images=config.images)
    from audit.probe_world import ensure_world

    root = ensure_world(config.store / "datasets", seed=config.seed, n_images=config.probe_images)
    return DataSource(
        name="probe", annotations=root, images=root / "images", ground_truth=root / "ground_truth.json"
    )


STRATA = ("split", "pope_label", "repope_label")  # what a --limit stratum is made of


def load_samples(config: AuditConfig, data: DataSource) -> tuple[AnnotationSet, list[Sample], Sampling]:
    """Load and verify the annotations (a malformed line raises, naming file and line, before any
    model call), keep the requested splits, apply --limit (a stratified sample of questions, seeded
    by --sample-seed: `audit.sampling`), and dedupe (image, question) pairs: a pair is asked once for
    all of its chosen questions. Returns the annotations, the samples and how they were chosen."""
    annotations = load_annotations(data.annotations)
    # one question per (split, question id), with its label under each label set
    labels: dict[tuple[str, int], dict[str, str]] = {}
    for pair in annotations.pairs:
        for o in pair.occurrences:
            if o.split in config.splits:
                labels.setdefault((o.split, o.question_id), {})[o.label_set] = o.label
    questions = sorted(labels, key=lambda k: (SPLITS.index(k[0]), k[1]))  # type: ignore[arg-type]
    chosen, sampling = stratified_sample(
        questions,
        config.limit,
        seed=config.sample_seed,
        stratum=lambda k: (k[0], labels[k].get("pope", "-"), labels[k].get("repope", "-")),
        strata=STRATA,
    )
    keep = set(chosen)
    samples: list[Sample] = []
    for pair in annotations.pairs:
        occ = tuple(o for o in pair.occurrences if (o.split, o.question_id) in keep)
        if not occ:
            continue
        first = min(occ, key=lambda o: (SPLITS.index(o.split), o.question_id))
        q = annotations.question(first.label_set, first.split, first.question_id)
        samples.append(
            Sample(
                pair_id=f"{first.split}/{first.question_id}",
                image=pair.image,
                question=pair.text,
                object_class=q.object if q is not None else pair.text,
                occurrences=occ,
            )
        )
    samples.sort(key=lambda s: sample_order(s.pair_id))
    return annotations, samples, sampling


def question_set(benchmark: str, samples: Sequence[Sample], data_checksums: dict[str, str]) -> str:
    """The fingerprint of the questions a run asks (`storage.verdicts.question_set_fingerprint`):
    equal for two runs exactly when they answer the same questions against the same label files."""
    from storage.verdicts import question_set_fingerprint

    questions = [(split_sample_id(sid)[0], sid) for s in samples for sid in s.sample_ids()]
    return question_set_fingerprint(benchmark, questions, data_checksums)


def benchmark_name(data: DataSource) -> str:
    """The run record's benchmark: "probe-pope" or "repope-pope"."""
    return f"{data.name}-pope"


def load_image(images: Path, name: str) -> RGBImage:
    """An RGB uint8 image (H, W, 3) of the data set; raises SampleError naming the file when it is
    missing, corrupt or refused by the image loader."""
    from eagle.run import load_rgb

    try:
        return load_rgb(image_path(images, name))
    except (OSError, ValueError) as exc:
        raise SampleError(f"cannot read image {name!r} in {images}: {exc}") from exc


def image_digest(images: Path, name: str) -> str:
    """sha256 of an image file ("missing" when it does not exist): part of an explanation's key."""
    from auditors.annotations import sha256_file

    path = image_path(images, name)
    return sha256_file(path) if path.is_file() else "missing"


__all__ = [
    "DataSource",
    "Sample",
    "SampleError",
    "image_digest",
    "load_image",
    "load_samples",
    "prepare_data",
    "question_set",
    "sample_order",
    "split_sample_id",
]
