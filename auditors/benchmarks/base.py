"""The benchmark plug-in protocol: everything benchmark-specific an audit needs, in one object.

An audit (`audit/`) is generic: it asks a model every `Item` of a benchmark once, writes one
answers row per `SampleRef` of the item, marks the rows that disagree with a label set, explains
the marked tokens with EAGLE, and stores metrics. What is asked, how an answer is read, what counts
as a hallucination and how the metrics are computed come from the `Benchmark` (lighteval's shape:
one file per benchmark under `auditors/benchmarks/`, found by name through the registry).

A plug-in implements:

- `check(source)`: cheap input checks before anything starts (raise `SourceError` naming the
  option).
- `load(source, splits)`: load and verify the data, and return `BenchmarkData`: the items (each
  with its image, prompt, split and stratification label, and every sample it is scored as),
  the label sets and the data checksums the run record keeps. Item order is the run's order.
- `judge(item, sample, answer)`: the answer's verdict and its outcome under each label set of the
  sample (stored in `answers.verdict` and `answers.outcomes`).
- `mark(item, row, marker)`: the answers row's marked tokens (`Mark`s) and the `Target`s to
  explain (token positions and ids, objective, the truth the correction scan restores).
- `corrected(target, answer)`: whether a regenerated answer no longer holds the hallucination.
- `metrics(data, rows, splits)`: `MetricGroup`s from the run's stored answers rows.

Plug-ins know nothing of storage: they return these dataclasses and the audit writes the rows.
- `headline`: the metric names the CLI summary shows (read from a metrics row or its `extra`).

Everything a worker process needs travels in picklable frozen dataclasses: `Item` and `Target`
carry a `specific` mapping for what only their benchmark reads (lighteval's `Doc.specific`).
Items have `split` and `label` fields so that sampling (`--limit`) can stratify over any benchmark.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from auditors.groundtruth import MaskSource


class SourceError(ValueError):
    """An input a benchmark cannot use; names the option (`--annotations`) and the fix."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"{option}: {message}")
        self.option = option


@dataclass(frozen=True, kw_only=True)
class DataSource:
    """Where a run's data is: what `--dataset` and its options resolve to."""

    name: str  # "probe" (the built-in probe world) | "repope" (the user's COCO images and files)
    images: Path  # image directory; item images are names relative to it
    annotations: Path | None = None  # POPE/RePOPE annotation directory (a probe world's root)
    ground_truth: Path | None = None  # a probe world's ground_truth.json (objects and masks)
    instances: Path | None = None  # COCO instances file (e.g. instances_val2014.json)

    @property
    def vocabulary(self) -> str:
        """The object vocabulary of the data: "probe" (12 classes) or "coco" (80 classes)."""
        return "probe" if self.name == "probe" else "coco"

    @property
    def masks(self) -> MaskSource | None:
        """Per-object masks, where the data has them (the probe world; COCO instances)."""
        if self.ground_truth is not None:
            return MaskSource(kind="probe", path=self.ground_truth.parent)
        if self.instances is not None:
            return MaskSource(kind="coco", path=self.instances)
        return None


@dataclass(frozen=True, kw_only=True)
class SampleRef:
    """One scored occurrence of an item: an answers row (e.g. POPE's "popular/12")."""

    sample_id: str  # unique within a run
    split: str | None = None
    question_id: int | None = None
    labels: Mapping[str, str] = field(default_factory=dict)  # label set -> ground-truth label


@dataclass(frozen=True, kw_only=True)
class Item:
    """One thing to ask the model once: an image and a prompt, and every sample it is scored as."""

    item_id: str  # the sample id its explanations are stored under (its first sample)
    image: str  # image name relative to DataSource.images
    prompt: str
    samples: tuple[SampleRef, ...]
    split: str | None = None  # for stratified sampling and reports
    label: str | None = None  # stratification label (POPE: the item's yes/no label)
    object_class: str | None = None  # the object asked about (yes/no questions)
    specific: Mapping[str, Any] = field(default_factory=dict)  # what only its benchmark reads

    def __post_init__(self) -> None:
        if not self.samples:
            raise ValueError(f"item {self.item_id!r} has no samples")


@dataclass(frozen=True, kw_only=True)
class Judgement:
    """How one answer reads, and its outcome under each label set of its sample."""

    verdict: str | None  # e.g. "yes" / "no" / "unparsed", or the classes a caption mentions
    outcomes: Mapping[
        str, str
    ]  # label set -> outcome, e.g. {"repope": "FP"} or {"instances": "hallucinated"}


@dataclass(frozen=True, kw_only=True)
class Target:
    """One hallucination to explain, in the model's own tokens."""

    sample_id: str  # where the explanation is stored (the item's id)
    question_id: int | None
    image: str
    prompt: str
    answer_ids: tuple[int, ...]  # the answer, teacher-forced
    positions: tuple[int, ...]  # (N,) answer positions of the target tokens
    target_ids: tuple[int, ...]  # (N,) token ids whose probability EAGLE explains
    target_text: str  # their text (" No", " star")
    objective: str  # "tokens" (a counter token) | "span-absence" (1 − joint probability of a span)
    truth: str  # what a corrected answer says (POPE: "yes"/"no"); captions: the class that must go
    label_set: str  # the label set under which this is a hallucination
    kind: str  # "false_positive" | "false_negative" | "hallucinated_object" | ...
    object_class: str | None = None
    specific: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.positions or len(self.positions) != len(self.target_ids):
            raise ValueError(f"target of {self.sample_id}: give one token id per position, at least one")

    @property
    def position(self) -> int:
        return self.positions[0]


@dataclass(frozen=True, kw_only=True)
class Mark:
    """One marked (hallucinated) stretch of an answer: a `marks` row of the store."""

    sample_id: str
    token_index: int  # first answer token of the mark
    token_end: int  # one past its last token (a caption mention may span several tokens)
    token_id: int  # the answer token at token_index
    token_text: str  # the text of tokens [token_index, token_end)
    char_start: int | None  # span in the answer text, [start, end)
    char_end: int | None
    label_set: str
    kind: str  # "false_positive" | "false_negative" | "hallucinated_object" | ...
    object_class: str | None
    counter_token_id: int | None = None  # the token explained instead (yes/no), else None
    counter_token_text: str | None = None
    logprob: float | None = None  # log-probability of the marked tokens (summed over a span)


@dataclass(frozen=True, kw_only=True)
class Marked:
    """What marking one answers row found: its marks and the targets to explain."""

    marks: list[Mark] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class MetricGroup:
    """The metrics of one group of samples (a `metrics` row of the store): per split ("all" for
    the whole run), label set and object class ("all" for every class)."""

    split: str
    label_set: str
    n: int  # samples scored
    object_class: str = "all"
    confusion: Any = None  # `auditors.scoring.Confusion` for yes/no benchmarks, else None
    values: Mapping[str, float] = field(default_factory=dict)  # other metrics: CHAIR_i, CI bounds, ...
    accuracy_se: float | None = None


@dataclass(frozen=True, kw_only=True)
class BenchmarkData:
    """A loaded, verified data set of one benchmark."""

    items: tuple[Item, ...]
    label_sets: tuple[str, ...]  # in priority order: a hallucination is explained under the first
    checksums: Mapping[str, str]  # data file name -> sha256, for the run record
    specific: Any = None  # what only the benchmark reads (e.g. the POPE AnnotationSet)


@runtime_checkable
class Benchmark(Protocol):
    """A benchmark plug-in (see the module docstring)."""

    name: str  # registry name, stored in answers.benchmark and metrics.benchmark
    max_new_tokens: int  # default answer length
    headline: tuple[str, ...]  # metric names the CLI summary shows

    def check(self, source: DataSource) -> None: ...

    def load(self, source: DataSource, splits: Sequence[str]) -> BenchmarkData: ...

    def judge(self, item: Item, sample: SampleRef, answer: str) -> Judgement: ...

    def mark(self, item: Item, row: Mapping[str, Any], marker: Any) -> Marked: ...

    def corrected(self, target: Target, answer: str) -> bool: ...

    def metrics(
        self, data: BenchmarkData, rows: Sequence[Mapping[str, Any]], splits: Sequence[str]
    ) -> list[MetricGroup]: ...


__all__ = [
    "Benchmark",
    "BenchmarkData",
    "DataSource",
    "Item",
    "Judgement",
    "Mark",
    "Marked",
    "MetricGroup",
    "SampleRef",
    "SourceError",
    "Target",
]
