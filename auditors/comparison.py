"""Two runs' verdicts on the same questions, compared group by group: the rates of both runs with a
paired bootstrap interval of each difference (`auditors.significance`), the exact McNemar test, and
the questions one run gets wrong and the other right.

Pairs are any objects with `.a` (baseline) and `.b` (candidate) verdicts carrying `benchmark`,
`label_set`, `split`, `sample_id`, `image`, `question`, `object_class`, `label`, `verdict`,
`outcome` (tp/fp/tn/fn/unparsed) and `answer_text` (`storage.verdicts.paired_verdicts` gives them).
Groups are benchmark × label set × split (each split, and "all": a question counted once per split
it occurs in, as POPE reports), and per object class over all splits. McNemar counts every asked
(image, question) pair once, so a question shared by three splits is not three pieces of evidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from auditors.annotations import SPLITS
from auditors.significance import (
    McNemar,
    PairedDifference,
    PairedQuestion,
    correct,
    paired_mcnemar,
    paired_rate_differences,
)

RATES = ("precision", "recall", "f1", "accuracy", "yes_ratio", "hallucination_rate", "unparsed_share")
# Which direction of each rate is better (yes_ratio has none).
BETTER = {
    "precision": "higher",
    "recall": "higher",
    "f1": "higher",
    "accuracy": "higher",
    "yes_ratio": None,
    "hallucination_rate": "lower",
    "unparsed_share": "lower",
    "amcr": "lower",
}
KIND = {"fp": "false_positive", "fn": "false_negative", "unparsed": "unparsed"}


@dataclass(frozen=True, kw_only=True)
class GroupComparison:
    """One benchmark × label set × split (× object class) of a comparison."""

    benchmark: str
    label_set: str
    split: str  # a split, or "all"
    object_class: str  # a class, or "all"
    questions: int  # paired questions (per split; "all" counts a question once per split, as POPE does)
    images: int  # shared images resampled by the bootstrap
    differences: dict[str, PairedDifference]
    mcnemar: McNemar  # on unique (image, question) pairs

    def to_dict(self) -> dict[str, Any]:
        return {
            "benchmark": self.benchmark,
            "label_set": self.label_set,
            "split": self.split,
            "object_class": self.object_class,
            "questions": self.questions,
            "images": self.images,
            "metrics": {k: d.to_dict() for k, d in self.differences.items()},
            "mcnemar": self.mcnemar.to_dict(),
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class SampleChange:
    """A question one run gets right and the other wrong, under one label set."""

    label_set: str
    sample_ids: tuple[str, ...]  # every split where the (image, question) pair was asked
    image: str
    question: str
    object_class: str | None
    label: str
    baseline_verdict: str
    candidate_verdict: str
    baseline_answer: str | None
    candidate_answer: str | None
    kind: str  # the wrong run's error: false_positive | false_negative | unparsed

    def to_dict(self) -> dict[str, Any]:
        return {
            "label_set": self.label_set,
            "sample_ids": list(self.sample_ids),
            "image": self.image,
            "question": self.question,
            "object_class": self.object_class,
            "label": self.label,
            "baseline_verdict": self.baseline_verdict,
            "candidate_verdict": self.candidate_verdict,
            "baseline_answer": self.baseline_answer,
            "candidate_answer": self.candidate_answer,
            "kind": self.kind,
        }


def _split_order(split: str) -> int:
    return SPLITS.index(split) if split in SPLITS else len(SPLITS)  # type: ignore[arg-type]


def compare_groups(
    pairs: Sequence[Any],
    *,
    metrics: Sequence[str] = RATES,
    level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
    by_class: bool = True,
) -> list[GroupComparison]:
    """One GroupComparison per benchmark × label set × split (and per class when `by_class`),
    sorted: RePOPE first, then splits in order, then classes."""
    by_group: dict[tuple[str, str, str, str], list[Any]] = {}
    for p in pairs:
        v = p.a
        split = v.split or "all"
        keys = [(v.benchmark, v.label_set, split, "all")]
        if split != "all":
            keys.append((v.benchmark, v.label_set, "all", "all"))
        if by_class and v.object_class:
            keys.append((v.benchmark, v.label_set, "all", v.object_class))
        for key in keys:
            by_group.setdefault(key, []).append(p)
    out = []
    for (benchmark, label_set, split, cls), members in sorted(
        by_group.items(),
        key=lambda kv: (
            kv[0][0],
            kv[0][1] != "repope",
            kv[0][1],
            kv[0][3] != "all",
            kv[0][3],
            _split_order(kv[0][2]),
        ),
    ):
        diffs = paired_rate_differences(
            [paired_question(p) for p in members], metrics, n_boot=n_boot, level=level, seed=seed
        )
        unique = {(p.a.image, p.a.question): p for p in members}  # McNemar: one verdict per asked pair
        mcnemar = paired_mcnemar([paired_question(p) for p in unique.values()])
        out.append(
            GroupComparison(
                benchmark=benchmark,
                label_set=label_set,
                split=split,
                object_class=cls,
                questions=len(members),
                images=len({p.a.image for p in members}),
                differences=diffs,
                mcnemar=mcnemar,
            )
        )
    return out


def paired_question(p: Any) -> PairedQuestion:
    return PairedQuestion(key=p.a.sample_id, image=p.a.image, baseline=p.a.outcome, candidate=p.b.outcome)


def changes(pairs: Sequence[Any]) -> tuple[list[SampleChange], list[SampleChange]]:
    """New errors of the candidate (baseline right, candidate wrong) and fixed ones (the reverse),
    one per label set and (image, question) pair, with every sample id the pair was asked as."""
    grouped: dict[tuple[str, str, str], list[Any]] = {}
    for p in pairs:
        if correct(p.a.outcome) != correct(p.b.outcome):
            grouped.setdefault((p.a.label_set, p.a.image, p.a.question), []).append(p)
    new, fixed = [], []
    for (label_set, image, question), members in grouped.items():
        a, b = members[0].a, members[0].b
        wrong = b if correct(a.outcome) else a
        change = SampleChange(
            label_set=label_set,
            sample_ids=tuple(sorted({m.a.sample_id for m in members}, key=_sample_key)),
            image=image,
            question=question,
            object_class=a.object_class,
            label=a.label,
            baseline_verdict=a.verdict,
            candidate_verdict=b.verdict,
            baseline_answer=a.answer_text,
            candidate_answer=b.answer_text,
            kind=KIND[wrong.outcome],
        )
        (new if correct(a.outcome) else fixed).append(change)

    def order(c: SampleChange) -> tuple:
        return (c.label_set != "repope", c.label_set, _sample_key(c.sample_ids[0]))

    return sorted(new, key=order), sorted(fixed, key=order)


def _sample_key(sample_id: str) -> tuple[int, int, str]:
    """Split order, then question id, for sample ids like "popular/12" (others sort by text)."""
    head, _, tail = sample_id.rpartition("/")
    split = head.rpartition("/")[2]
    return (_split_order(split), int(tail) if tail.isdigit() else 0, sample_id)


__all__ = [
    "BETTER",
    "KIND",
    "RATES",
    "GroupComparison",
    "SampleChange",
    "changes",
    "compare_groups",
    "paired_question",
]
