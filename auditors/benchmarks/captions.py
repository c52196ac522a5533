"""Caption hallucination (CHAIR, Rohrbach et al. 2018) with this project's synonym tables, and the
audit's caption plug-in (`CAPTIONS`, `eagle-audit audit --benchmark captions`).

A generated caption's object mentions (`auditors.mentions`) are compared with the objects the
image really holds: a mention whose class is absent is hallucinated.

- CHAIR_i = hallucinated mentions / verified mentions (every occurrence counts, as in the original).
- CHAIR_s = captions with at least one hallucinated mention / captions.
- Object recall = ground-truth classes mentioned / ground-truth classes (summed over images).

Ground truth (`auditors.groundtruth`), one label set per source:

- "instances": exhaustive object annotations: a probe world's `ground_truth.json`, or COCO
  `instances_val2014.json` (`--instances`). Every mention is verified.
- "repope" (and "pope"): without instances, the POPE/RePOPE labels of each image: an object
  labelled absent that the caption mentions is a hallucination, one labelled present a correct
  mention; objects no question asks about are *unverified*: counted apart (`unverified`), never as
  hallucinations, and left out of CHAIR_i's denominator.

The audit asks "Describe the image." with 64 new tokens by default. Each hallucinated mention is
one token span; EAGLE explains the span's absence (1 − the joint probability of its tokens under
teacher forcing, `eagle.objectives`), so the top of 1 − map drives the mention, and the correction
scan removes those regions first, regenerating until the caption no longer names the class.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from auditors.annotations import SPLITS, image_path, load_annotations, read_sha256sums, sha256_file
from auditors.benchmarks.base import (
    BenchmarkData,
    DataSource,
    Item,
    Judgement,
    Mark,
    Marked,
    MetricGroup,
    SampleRef,
    SourceError,
    Target,
)
from auditors.groundtruth import (
    ImageTruth,
    coco_ground_truth,
    coco_truth,
    labelled_truth,
    probe_ground_truth,
    probe_truth,
)
from auditors.mentions import Mention, Vocabulary, vocabulary
from auditors.scoring import ratio_bootstrap

NAME = "captions"
PROMPT = "Describe the image."
INSTANCES = "instances"  # label set of exhaustive object annotations (probe world, COCO instances)
BOOTSTRAP_REPLICATES = 500


@dataclass(frozen=True, kw_only=True, slots=True)
class CaptionScore:
    """One caption: its mentions, which are hallucinated, and which true objects it covers."""

    image: str
    caption: str
    mentions: tuple[Mention, ...]
    hallucinated: tuple[Mention, ...]  # mentions whose class is not in the image
    present: frozenset[str]  # ground-truth classes of the image
    covered: frozenset[str]  # ground-truth classes the caption mentions


@dataclass(frozen=True, kw_only=True, slots=True)
class ChairReport:
    captions: tuple[CaptionScore, ...]

    @property
    def n_mentions(self) -> int:
        return sum(len(c.mentions) for c in self.captions)

    @property
    def n_hallucinated(self) -> int:
        return sum(len(c.hallucinated) for c in self.captions)

    @property
    def chair_i(self) -> float | None:
        """Hallucinated mentions / mentions; None without any mention."""
        return self.n_hallucinated / self.n_mentions if self.n_mentions else None

    @property
    def chair_s(self) -> float | None:
        """Captions with a hallucinated mention / captions; None without captions."""
        if not self.captions:
            return None
        return sum(bool(c.hallucinated) for c in self.captions) / len(self.captions)

    @property
    def recall(self) -> float | None:
        """Ground-truth classes mentioned / ground-truth classes, over all images."""
        total = sum(len(c.present) for c in self.captions)
        return sum(len(c.covered) for c in self.captions) / total if total else None

    def to_dict(self) -> dict[str, object]:
        return {
            "chair_i": self.chair_i,
            "chair_s": self.chair_s,
            "recall": self.recall,
            "captions": len(self.captions),
            "mentions": self.n_mentions,
            "hallucinated": self.n_hallucinated,
        }


def score_caption(image: str, caption: str, present: Iterable[str], vocab: Vocabulary) -> CaptionScore:
    present = frozenset(present)
    unknown = sorted(present - set(vocab.classes))
    if unknown:
        raise ValueError(f"ground truth of {image} names classes {unknown} that the vocabulary does not know")
    mentions = tuple(vocab.extract(caption))
    return CaptionScore(
        image=image,
        caption=caption,
        mentions=mentions,
        hallucinated=tuple(m for m in mentions if m.cls not in present),
        present=present,
        covered=frozenset(m.cls for m in mentions if m.cls in present),
    )


def chair(
    captions: Mapping[str, str], ground_truth: Mapping[str, Iterable[str]], vocab: Vocabulary | str = "coco"
) -> ChairReport:
    """CHAIR over `captions` (image -> generated caption) against `ground_truth` (image -> classes).

    Every captioned image needs ground truth; a missing one is an error, not a skipped caption.
    """
    vocab = vocabulary(vocab) if isinstance(vocab, str) else vocab
    missing = [image for image in captions if image not in ground_truth]
    if missing:
        raise KeyError(f"no ground-truth objects for {len(missing)} captioned image(s), e.g. {missing[0]!r}")
    return ChairReport(
        captions=tuple(
            score_caption(image, text, ground_truth[image], vocab) for image, text in captions.items()
        )
    )


class CaptionsBenchmark:
    """The plug-in: one caption per image; hallucinated mentions marked as token spans and explained
    through the span's absence (see the module docstring)."""

    name = NAME
    prompt = PROMPT
    max_new_tokens = 64
    headline = ("chair_i", "chair_s", "recall", "mentions", "hallucinated", "unverified")

    def check(self, source: DataSource) -> None:
        if source.ground_truth is None and source.instances is None and source.annotations is None:
            raise SourceError(
                "--instances",
                "captions need ground truth: --instances instances_val2014.json (COCO instances), "
                "or --annotations DIR with the POPE/RePOPE files",
            )

    def load(self, source: DataSource, splits: Sequence[str]) -> BenchmarkData:
        """Ground truth per label set, and one item per image that the ground truth covers and the
        image directory holds (sorted by name)."""
        self.check(source)
        truths, checksums = _truths(source)
        covered = sorted(set().union(*truths.values()))
        images = [name for name in covered if image_path(source.images, name).is_file()]
        items = tuple(
            Item(
                item_id=name,
                image=name,
                prompt=PROMPT,
                samples=(
                    SampleRef(
                        sample_id=name, labels={ls: t[name].label() for ls, t in truths.items() if name in t}
                    ),
                ),
                specific={
                    "vocabulary": source.vocabulary,
                    "truth": {ls: t.get(name, _UNKNOWN) for ls, t in truths.items()},
                },
            )
            for name in images
        )
        return BenchmarkData(items=items, label_sets=tuple(truths), checksums=checksums, specific=None)

    def judge(self, item: Item, sample: SampleRef, answer: str) -> Judgement:
        mentions = vocabulary(item.specific["vocabulary"]).extract(answer)
        return Judgement(
            verdict=", ".join(sorted({m.cls for m in mentions})),
            outcomes={ls: caption_outcome(t, mentions) for ls, t in item.specific["truth"].items()},
        )

    def mark(self, item: Item, row: Mapping[str, Any], marker: Any) -> Marked:
        """Every mention a label set says is absent, as a token span; one target per span (under the
        first label set that marks it)."""
        vocab = vocabulary(item.specific["vocabulary"])
        logprobs = row.get("logprobs") or []
        out = Marked()
        explained: set[tuple[int, int]] = set()
        for label_set, truth in item.specific["truth"].items():
            allowed = [c for c in vocab.classes if truth.status(c) != "absent"]
            for t in marker.mark_caption(answer_ids=row["token_ids"], present=allowed, vocabulary=vocab):
                text = marker.decode(list(t.token_ids))
                out.marks.append(
                    Mark(
                        sample_id=row["sample_id"],
                        token_index=t.token_start,
                        token_end=t.token_end,
                        token_id=t.token_ids[0],
                        token_text=text,
                        char_start=t.char_start,
                        char_end=t.char_end,
                        label_set=label_set,
                        kind="hallucinated_object",
                        object_class=t.cls,
                        logprob=sum(logprobs[t.token_start : t.token_end]) if logprobs else None,
                    )
                )
                if (t.token_start, t.token_end) in explained:
                    continue
                explained.add((t.token_start, t.token_end))
                out.targets.append(
                    Target(
                        sample_id=item.item_id,
                        question_id=None,
                        image=item.image,
                        prompt=item.prompt,
                        answer_ids=tuple(row["token_ids"]),
                        positions=t.positions,
                        target_ids=t.token_ids,
                        target_text=text,
                        objective="span-absence",
                        truth=t.cls,
                        label_set=label_set,
                        kind="hallucinated_object",
                        object_class=t.cls,
                        specific={"vocabulary": item.specific["vocabulary"]},
                    )
                )
        return out

    def corrected(self, target: Target, answer: str) -> bool:
        """The regenerated caption no longer names the hallucinated class."""
        return all(m.cls != target.truth for m in vocabulary(target.specific["vocabulary"]).extract(answer))

    def metrics(
        self, data: BenchmarkData, rows: Sequence[Mapping[str, Any]], splits: Sequence[str]
    ) -> list[MetricGroup]:
        """CHAIR_i, CHAIR_s and recall per label set, overall and per class, with image-clustered
        bootstrap intervals; unverified mentions counted apart."""
        items = {item.item_id: item for item in data.items}
        answered = [
            (items[r["sample_id"]], r["answer_text"]) for r in rows if r.get("answer_text") is not None
        ]
        out = []
        for label_set in data.label_sets:
            scored = [
                _CaptionCounts.of(
                    vocabulary(item.specific["vocabulary"]).extract(text), item.specific["truth"][label_set]
                )
                for item, text in answered
            ]
            images = [item.image for item, _ in answered]
            out.append(_all_group(label_set, scored, images))
            classes = sorted({c for s in scored for c in (*s.by_class, *s.present)})
            for cls in classes:
                group = _class_group(label_set, cls, scored, images)
                if group is not None:
                    out.append(group)
        return out


_UNKNOWN = ImageTruth(image="", present=frozenset(), absent=frozenset())  # no label: everything unverified


def caption_outcome(truth: ImageTruth, mentions: Sequence[Mention]) -> str:
    """ "hallucinated" (a mention of an absent class), else "unverified" (a mention the truth does not
    cover), else "faithful" (every mention present), or "no_mentions"."""
    status = {truth.status(m.cls) for m in mentions}
    if "absent" in status:
        return "hallucinated"
    if "unverified" in status:
        return "unverified"
    return "faithful" if mentions else "no_mentions"


def _truths(source: DataSource) -> tuple[dict[str, dict[str, ImageTruth]], dict[str, str]]:
    """Label set -> image -> truth, in priority order, and the checksums of the files read."""
    if source.ground_truth is not None:
        path = source.ground_truth
        sums = path.parent / "SHA256SUMS"
        digest = sha256_file(path)
        if sums.is_file() and read_sha256sums(sums).get(path.name, digest) != digest:
            raise SourceError(
                "--dataset", f"{path} does not match the world's SHA256SUMS; write the world again"
            )
        return {INSTANCES: probe_truth(path.parent)}, {path.name: digest}
    if source.instances is not None:
        return {INSTANCES: coco_truth(source.instances)}, {
            source.instances.name: sha256_file(source.instances)
        }
    assert source.annotations is not None
    annotations = load_annotations(source.annotations)
    truths = {
        ls: labelled_truth(
            (q.image, q.object, q.label) for split in SPLITS for q in annotations.questions(ls, split)
        )
        for ls in ("repope", "pope")
        if ls in annotations.label_sets
    }
    return truths, {f.path.name: f.sha256 for f in annotations.files.values()}


@dataclass(frozen=True, kw_only=True, slots=True)
class _CaptionCounts:
    """One caption under one label set: per class, hallucinated / verified / unverified mentions."""

    by_class: Mapping[str, tuple[int, int, int]]  # class -> (hallucinated, verified, unverified)
    present: frozenset[str]  # classes the truth says are present
    covered: frozenset[str]  # present classes the caption mentions

    @classmethod
    def of(cls, mentions: Sequence[Mention], truth: ImageTruth) -> _CaptionCounts:
        counts: dict[str, list[int]] = {}
        for m in mentions:
            c = counts.setdefault(m.cls, [0, 0, 0])
            status = truth.status(m.cls)
            c[0] += status == "absent"
            c[1] += status != "unverified"
            c[2] += status == "unverified"
        return cls(
            by_class={k: (v[0], v[1], v[2]) for k, v in counts.items()},
            present=truth.present,
            covered=frozenset(m.cls for m in mentions if m.cls in truth.present),
        )

    def total(self, i: int) -> int:
        return sum(v[i] for v in self.by_class.values())


def _ci(values: dict[str, float], name: str, num: list[float], den: list[float], images: list[str]) -> None:
    iv = ratio_bootstrap(num, den, images, metric=name, n_boot=BOOTSTRAP_REPLICATES)
    if iv.estimate is not None:
        values[name] = iv.estimate
    if iv.low is not None and iv.high is not None:
        values[f"{name}_ci_low"], values[f"{name}_ci_high"] = iv.low, iv.high


def _all_group(label_set: str, scored: list[_CaptionCounts], images: list[str]) -> MetricGroup:
    hallucinated = [float(s.total(0)) for s in scored]
    verified = [float(s.total(1)) for s in scored]
    values: dict[str, float] = {
        "captions": float(len(scored)),
        "mentions": sum(verified),
        "hallucinated": sum(hallucinated),
        "unverified": float(sum(s.total(2) for s in scored)),
    }
    _ci(values, "chair_i", hallucinated, verified, images)
    _ci(values, "chair_s", [float(h > 0) for h in hallucinated], [1.0] * len(scored), images)
    _ci(
        values,
        "recall",
        [float(len(s.covered)) for s in scored],
        [float(len(s.present)) for s in scored],
        images,
    )
    return MetricGroup(split="all", label_set=label_set, n=len(scored), values=values)


def _class_group(
    label_set: str, cls: str, scored: list[_CaptionCounts], images: list[str]
) -> MetricGroup | None:
    counts = [s.by_class.get(cls, (0, 0, 0)) for s in scored]
    involved = [i for i, s in enumerate(scored) if counts[i] != (0, 0, 0) or cls in s.present]
    if not involved:
        return None
    values: dict[str, float] = {
        "mentions": float(sum(counts[i][1] for i in involved)),
        "hallucinated": float(sum(counts[i][0] for i in involved)),
        "unverified": float(sum(counts[i][2] for i in involved)),
        "present": float(sum(cls in scored[i].present for i in involved)),
    }
    sub = [images[i] for i in involved]
    _ci(
        values,
        "chair_i",
        [float(counts[i][0]) for i in involved],
        [float(counts[i][1]) for i in involved],
        sub,
    )
    _ci(
        values, "recall", [float(cls in scored[i].covered) for i in involved],
        [float(cls in scored[i].present) for i in involved], sub,
    )  # fmt: skip
    return MetricGroup(split="all", label_set=label_set, object_class=cls, n=len(involved), values=values)


CAPTIONS = CaptionsBenchmark()

__all__ = [
    "CAPTIONS",
    "INSTANCES",
    "CaptionScore",
    "CaptionsBenchmark",
    "ChairReport",
    "caption_outcome",
    "chair",
    "coco_ground_truth",
    "probe_ground_truth",
    "score_caption",
]
