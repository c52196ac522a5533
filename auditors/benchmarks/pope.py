"""POPE / RePOPE: yes/no object-presence questions over COCO val2014 (or a probe world).

Paper: Li et al., "Evaluating Object Hallucination in Large Vision-Language Models" (2023);
RePOPE relabelling: Neuhaus & Hein, arXiv 2504.15707. Three splits (random, popular,
adversarial) of 3,000 questions each; RePOPE keeps question ids, drops ambiguous questions and
flips wrong labels. Metrics: TP/FP/TN/FN, precision, recall, F1, accuracy, predicted yes-ratio,
unparsed count (see `auditors.scoring` for the policy).

Run each unique (image, question) pair once (`items()`), then score the same answers against
both label sets (`score()`); `PopeReport.flips` lists the verdicts that change between them.
`POPE` is the audit's plug-in (`auditors.benchmarks.base.Benchmark`): the same pairs as items, the
yes/no reading, marking and metrics of `auditors.benchmarks.yesno`.

Answers file (JSON lines), one answer per question asked::

    {"question_id": 12, "split": "random", "answer": "Yes, there is a dog."}

An answer given for one split also answers the same (image, question) pair in the other splits
unless those have their own answer: a deduplicated run answers 5,127 pairs and is scored on all
9,000 POPE questions.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from auditors.annotations import (
    LABEL_SETS,
    SPLITS,
    AnnotationError,
    AnnotationSet,
    LabelSet,
    Split,
    load_annotations,
)
from auditors.benchmarks.base import BenchmarkData, DataSource, Item, SampleRef, SourceError
from auditors.benchmarks.yesno import YesNoBenchmark
from auditors.parsing import parse_yes_no
from auditors.scoring import METRICS, Confusion, Interval, Outcome, cluster_bootstrap, outcome

NAME = "pope"
PROMPT = "{question}"  # POPE asks the question text as is


@dataclass(frozen=True, kw_only=True, slots=True)
class PopeItem:
    """One unique (image, question) pair to ask, with a representative (split, question id)."""

    image: str
    question: str
    split: Split  # where the pair first occurs: the key its answer is written under
    question_id: int


@dataclass(frozen=True, kw_only=True, slots=True)
class ScoredAnswer:
    """One question of one label set, its answer and verdict."""

    label_set: LabelSet
    split: Split
    question_id: int
    image: str
    object: str
    label: str
    answer: str
    parsed: str  # yes / no / unparsed
    outcome: Outcome


@dataclass(frozen=True, kw_only=True, slots=True)
class Flip:
    """A question whose verdict differs between POPE and RePOPE labels (its label was corrected)."""

    split: Split
    question_id: int
    pope: Outcome
    repope: Outcome

    def to_dict(self) -> dict[str, object]:
        return {
            "split": self.split,
            "question_id": self.question_id,
            "pope": self.pope,
            "repope": self.repope,
        }


@dataclass(frozen=True, kw_only=True)
class PopeReport:
    """Scores of one answer set against every label set present.

    `confusion[label_set][split]` with split in random/popular/adversarial/all ("all" sums the
    three splits, so a pair asked in several splits counts once per split, as POPE reports it).
    """

    confusion: Mapping[str, Mapping[str, Confusion]]
    scored: tuple[ScoredAnswer, ...]
    flips: tuple[Flip, ...]
    unanswered: Mapping[str, Mapping[str, int]]  # questions without an answer, per label set/split
    answers_used: int = field(default=0)

    def per_class(self, label_set: LabelSet, split: str = "all") -> dict[str, Confusion]:
        """Counts per object class (the object asked about), for the false-positive rate per class."""
        out: dict[str, list[str]] = {}
        for s in self._select(label_set, split):
            out.setdefault(s.object, []).append(s.outcome)
        return {obj: Confusion.from_outcomes(v) for obj, v in sorted(out.items())}

    def intervals(
        self,
        label_set: LabelSet,
        split: str = "all",
        metrics: Iterable[str] = METRICS,
        n_boot: int = 2000,
        level: float = 0.95,
        seed: int = 0,
    ) -> dict[str, Interval]:
        """Image-clustered bootstrap intervals (see `auditors.scoring.cluster_bootstrap`)."""
        chosen = self._select(label_set, split)
        return cluster_bootstrap(
            [s.outcome for s in chosen], [s.image for s in chosen], tuple(metrics), n_boot, level, seed
        )

    def _select(self, label_set: LabelSet, split: str) -> list[ScoredAnswer]:
        if split != "all" and split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)} or 'all'")
        return [s for s in self.scored if s.label_set == label_set and (split == "all" or s.split == split)]

    def to_dict(self) -> dict[str, object]:
        """{"pope": {"random": {...}, ..., "all": {...}}, "repope": {...}, "flips": [...]}"""
        out: dict[str, object] = {
            ls: {split: c.to_dict() for split, c in per_split.items()}
            for ls, per_split in self.confusion.items()
        }
        out["flips"] = [f.to_dict() for f in self.flips]
        return out


def items(annotations: AnnotationSet) -> list[PopeItem]:
    """The unique (image, question) pairs, each once, keyed by its first (split, question id)."""
    out = []
    for pair in annotations.pairs:
        first = pair.occurrences[0]
        out.append(
            PopeItem(image=pair.image, question=pair.text, split=first.split, question_id=first.question_id)
        )
    return out


def load_answers(path: Path | str) -> dict[tuple[Split, int], str]:
    """Read a JSON-lines answers file into (split, question id) -> raw answer text.

    Errors name the file and line: malformed JSON, missing fields, unknown split, a duplicate.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AnnotationError(f"cannot read answers file {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise AnnotationError(f"answers file {path} is not UTF-8 text (byte {exc.start})") from exc
    answers: dict[tuple[Split, int], str] = {}
    where_seen: dict[tuple[Split, int], int] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            row = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise AnnotationError(f"{where}: not valid JSON ({exc.msg})") from exc
        if not isinstance(row, dict):
            raise AnnotationError(f"{where}: expected a JSON object, got {type(row).__name__}")
        missing = [k for k in ("question_id", "split", "answer") if k not in row]
        if missing:
            raise AnnotationError(
                f"{where}: missing field(s) {', '.join(missing)}; "
                "each line needs question_id, split and answer"
            )
        qid, split, answer = row["question_id"], row["split"], row["answer"]
        if isinstance(qid, bool) or not isinstance(qid, int):
            raise AnnotationError(f"{where}: question_id must be an integer, got {qid!r}")
        if split not in SPLITS:
            raise AnnotationError(f"{where}: unknown split {split!r}; expected one of {', '.join(SPLITS)}")
        if answer is None:
            answer = ""  # a missing generation is an answer that cannot be parsed, not a dropped row
        if not isinstance(answer, str):
            raise AnnotationError(f"{where}: answer must be a string, got {type(answer).__name__}")
        key = (split, qid)
        if key in answers:
            raise AnnotationError(
                f"{where}: second answer for {split} question {qid} (first on line {where_seen[key]})"
            )
        answers[key] = answer
        where_seen[key] = lineno
    return answers


def resolve_answers(
    annotations: AnnotationSet, answers: Mapping[tuple[Split, int], str]
) -> dict[tuple[Split, int], str]:
    """Answers for every (split, question id) reachable: a question's own answer, else the answer
    given to the same (image, question) pair under another split (first in split order).

    Raises AnnotationError for an answer to a question that no label set contains.
    """
    by_pair: dict[tuple[str, str], str] = {}
    for split, qid in sorted(answers, key=lambda k: (SPLITS.index(k[0]), k[1])):
        pair = annotations.pair_of(split, qid)
        if pair is None:
            raise AnnotationError(
                f"answer for {split} question {qid}, which is in none of the annotation files in "
                f"{annotations.root}; check that the answers belong to these annotations"
            )
        by_pair.setdefault(pair.key, answers[(split, qid)])
    resolved: dict[tuple[Split, int], str] = {}
    for pair in annotations.pairs:
        if pair.key not in by_pair:
            continue
        for occ in pair.occurrences:
            key = (occ.split, occ.question_id)
            resolved.setdefault(key, answers.get(key, by_pair[pair.key]))
    return resolved


def score(annotations: AnnotationSet, answers: Mapping[tuple[Split, int], str]) -> PopeReport:
    """Score one answer set against every label set present, per split and overall."""
    resolved = resolve_answers(annotations, answers)
    parsed_cache: dict[str, str] = {}
    scored: list[ScoredAnswer] = []
    confusion: dict[str, dict[str, Confusion]] = {}
    unanswered: dict[str, dict[str, int]] = {}
    for label_set in annotations.label_sets:
        per_split: dict[str, Confusion] = {}
        missing: dict[str, int] = {}
        for split in annotations.splits:
            outcomes = []
            missing[split] = 0
            for q in annotations.questions(label_set, split):
                answer = resolved.get((split, q.question_id))
                if answer is None:
                    missing[split] += 1
                    continue
                if answer not in parsed_cache:
                    parsed_cache[answer] = parse_yes_no(answer)
                verdict = parsed_cache[answer]
                o = outcome(q.label, verdict)
                outcomes.append(o)
                scored.append(
                    ScoredAnswer(
                        label_set=label_set,
                        split=split,
                        question_id=q.question_id,
                        image=q.image,
                        object=q.object,
                        label=q.label,
                        answer=answer,
                        parsed=verdict,
                        outcome=o,
                    )
                )
            per_split[split] = Confusion.from_outcomes(outcomes)
        total = Confusion()
        for c in per_split.values():
            total = total + c
        per_split["all"] = total
        missing["all"] = sum(missing.values())
        confusion[label_set] = per_split
        unanswered[label_set] = missing
    return PopeReport(
        confusion=confusion,
        scored=tuple(scored),
        flips=_flips(scored),
        unanswered=unanswered,
        answers_used=len(answers),
    )


def _flips(scored: list[ScoredAnswer]) -> tuple[Flip, ...]:
    if not all(ls in {s.label_set for s in scored} for ls in LABEL_SETS):
        return ()
    pope = {(s.split, s.question_id): s.outcome for s in scored if s.label_set == "pope"}
    flips = []
    for s in scored:
        if s.label_set != "repope":
            continue
        before = pope.get((s.split, s.question_id))
        if before is not None and before != s.outcome:
            flips.append(Flip(split=s.split, question_id=s.question_id, pope=before, repope=s.outcome))
    return tuple(sorted(flips, key=lambda f: (SPLITS.index(f.split), f.question_id)))


class PopeBenchmark(YesNoBenchmark):
    """The plug-in: POPE/RePOPE-format annotation files (the public COCO files or a probe world's),
    each unique (image, question) pair asked once and scored under every (split, question id) and
    label set where it occurs; hallucinations are explained under RePOPE labels first."""

    name = NAME
    prompt = PROMPT
    label_priority = ("repope", "pope")

    def check(self, source: DataSource) -> None:
        if source.annotations is None:
            raise SourceError(
                "--annotations",
                "the pope benchmark needs --annotations DIR (the POPE/RePOPE files; "
                "`eagle-audit pope fetch --out DIR` downloads them)",
            )

    def load(self, source: DataSource, splits: Sequence[str]) -> BenchmarkData:
        """Load and verify the annotation files (a malformed line raises, naming file and line)."""
        self.check(source)
        assert source.annotations is not None
        annotations = load_annotations(source.annotations)
        return BenchmarkData(
            items=tuple(pope_items(annotations, splits)),
            label_sets=tuple(ls for ls in self.label_priority if ls in annotations.label_sets),
            checksums={f.path.name: f.sha256 for f in annotations.files.values()},
            specific=annotations,
        )


def pope_items(annotations: AnnotationSet, splits: Sequence[str] = SPLITS) -> list[Item]:
    """One item per unique (image, question) pair occurring in `splits`, keyed by its first
    (split, question id), with every (split, question id) it occurs as and its labels there; in
    split then question-id order."""
    out = []
    for pair in annotations.pairs:
        labels: dict[tuple[str, int], dict[str, str]] = {}
        for o in pair.occurrences:
            if o.split in splits:
                labels.setdefault((o.split, o.question_id), {})[o.label_set] = o.label
        if not labels:
            continue
        keys = sorted(labels, key=_order)
        split, qid = keys[0]
        question = next(
            q
            for ls in LABEL_SETS
            if (q := annotations.question(ls, split, qid)) is not None  # type: ignore[arg-type]
        )
        out.append(
            Item(
                item_id=f"{split}/{qid}",
                image=pair.image,
                prompt=PROMPT.format(question=pair.text),
                samples=tuple(
                    SampleRef(sample_id=f"{s}/{q}", split=s, question_id=q, labels=labels[(s, q)])
                    for s, q in keys
                ),
                split=split,
                label=pair.label("repope") or pair.label("pope"),
                object_class=question.object,
            )
        )
    return sorted(out, key=lambda item: _order((item.split, item.samples[0].question_id)))


def _order(key: tuple[str | None, int | None]) -> tuple[int, int]:
    return SPLITS.index(key[0]), key[1]  # type: ignore[arg-type]


POPE = PopeBenchmark()
