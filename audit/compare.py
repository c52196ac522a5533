"""Compare two runs of a store: a baseline and a candidate that answered the same questions.

    comparison = compare_runs("store", "model:probe", "20250302T023000Z-synth0001")
    row = comparison.group("repope", "all")
    row.differences["hallucination_rate"].difference, row.mcnemar.p_two_sided

For every benchmark, label set and split (and per object class over all splits): both runs'
rates and the candidate − baseline difference with a paired bootstrap interval over the shared
images, and an exact McNemar test on the paired right/wrong verdicts; then the questions the
candidate gets wrong where the baseline was right (new hallucinations) and the reverse (fixed).

Runs are compared only on the same question set (`storage.verdicts.question_set`): a `--limit 200`
run against a full run is refused (`QuestionSetsDiffer`) unless `intersect=True` restricts both to
the questions they share. A question whose label differs between the two runs' label files is left
out of the pairing (counted in `label_conflicts`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from auditors.comparison import BETTER, RATES, GroupComparison, SampleChange, changes, compare_groups
from auditors.significance import PairedDifference, mean_statistic, paired_bootstrap
from storage.verdicts import (
    QuestionSet,
    RunRef,
    correction_areas,
    find_run,
    latest_complete_run,
    model_ids,
    paired_verdicts,
    question_set,
    recent_runs,
)

MODEL_PREFIX = "model:"
__all__ = [
    "BETTER",
    "MODEL_PREFIX",
    "RATES",
    "CompareError",
    "Comparison",
    "QuestionSetsDiffer",
    "amcr_difference",
    "compare_resolved",
    "compare_runs",
    "open_store",
    "resolve_run",
]


class CompareError(ValueError):
    """Runs that cannot be compared; the message names the run and what to do."""


class QuestionSetsDiffer(CompareError):
    """The two runs asked different questions (and `intersect` was not asked for)."""


@dataclass(frozen=True, kw_only=True)
class Comparison:
    """Everything `eagle-audit compare` shows (`to_dict()` is its `--json`)."""

    baseline: RunRef
    candidate: RunRef
    baseline_questions: QuestionSet
    candidate_questions: QuestionSet
    intersected: bool  # restricted to the shared questions because the question sets differ
    shared_questions: int
    label_conflicts: int  # shared questions left out because their labels differ between the runs
    groups: list[GroupComparison]
    new_hallucinations: list[SampleChange]  # candidate wrong, baseline right
    fixed: list[SampleChange]  # candidate right, baseline wrong
    amcr: PairedDifference | None  # mean correction area of explained hallucinations (None: none explained)
    level: float
    n_boot: int
    seed: int
    notes: list[str] = field(default_factory=list)

    @property
    def same_question_set(self) -> bool:
        return self.baseline_questions.fingerprint == self.candidate_questions.fingerprint

    def group(
        self, label_set: str, split: str = "all", object_class: str = "all", benchmark: str | None = None
    ) -> GroupComparison | None:
        for g in self.groups:
            if (g.label_set, g.split, g.object_class) == (label_set, split, object_class) and (
                benchmark is None or g.benchmark == benchmark
            ):
                return g
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline.to_dict() | {"question_set": self.baseline_questions.to_dict()},
            "candidate": self.candidate.to_dict() | {"question_set": self.candidate_questions.to_dict()},
            "same_question_set": self.same_question_set,
            "intersected": self.intersected,
            "shared_questions": self.shared_questions,
            "label_conflicts": self.label_conflicts,
            "level": self.level,
            "n_boot": self.n_boot,
            "seed": self.seed,
            "groups": [g.to_dict() for g in self.groups],
            "amcr": None if self.amcr is None else self.amcr.to_dict(),
            "new_hallucinations": [c.to_dict() for c in self.new_hallucinations],
            "fixed": [c.to_dict() for c in self.fixed],
            "notes": list(self.notes),
        }


def resolve_run(con, spec: str, *, exclude: str | None = None) -> RunRef:
    """A run id, or `model:NAME` for that model's latest complete run (other than `exclude`)."""
    if spec.startswith(MODEL_PREFIX):
        model = spec[len(MODEL_PREFIX) :]
        run = latest_complete_run(con, model, exclude=exclude)
        if run is None:
            models = model_ids(con)
            known = f"models in the store: {', '.join(models)}" if models else "the store has no runs"
            raise CompareError(f"no complete run of model {model!r} ({known}); pass a run id or model:NAME")
        return run
    run = find_run(con, spec)
    if run is None:
        recent = recent_runs(con)
        hint = f"recent runs: {', '.join(recent)}" if recent else "the store has no runs"
        raise CompareError(f"run {spec!r} is not in the store ({hint}); pass a run id or model:NAME")
    return run


def open_store(store: str | os.PathLike[str]):  # -> duckdb.DuckDBPyConnection
    """A read-only connection to an existing store; CompareError when there is none."""
    from storage.store import Store, StoreNotFoundError

    try:
        return Store(store, create=False).connect()
    except (StoreNotFoundError, ValueError) as exc:
        raise CompareError(str(exc)) from exc


def compare_runs(
    store: str | os.PathLike[str],
    baseline: str,
    candidate: str,
    *,
    intersect: bool = False,
    level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
    by_class: bool = True,
) -> Comparison:
    """Compare `candidate` with `baseline` (each a run id or `model:NAME`) in the store at `store`.

    Raises CompareError for an unknown run or model, QuestionSetsDiffer when the runs asked
    different questions and `intersect` is False, and CompareError when they share none."""
    con = open_store(store)
    try:
        cand = resolve_run(con, candidate)
        base = resolve_run(con, baseline, exclude=cand.run_id if baseline.startswith(MODEL_PREFIX) else None)
        return compare_resolved(
            con, base, cand, intersect=intersect, level=level, n_boot=n_boot, seed=seed, by_class=by_class
        )
    finally:
        con.close()


def compare_resolved(
    con,
    baseline: RunRef,
    candidate: RunRef,
    *,
    intersect: bool = False,
    level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
    by_class: bool = True,
) -> Comparison:
    """`compare_runs` on an open connection, for runs already looked up."""
    qa, qb = question_set(con, baseline.run_id), question_set(con, candidate.run_id)
    shared = qa.sample_ids & qb.sample_ids
    notes = []
    if qa.fingerprint != qb.fingerprint:
        if not intersect:
            raise QuestionSetsDiffer(
                f"runs {baseline.run_id} ({len(qa.sample_ids)} questions) and {candidate.run_id} "
                f"({len(qb.sample_ids)} questions) asked different question sets ({len(shared)} shared); "
                "compare runs of the same questions, or pass --intersect to compare on the shared ones"
            )
        notes.append(
            f"question sets differ: compared on the {len(shared)} shared questions "
            f"(baseline {len(qa.sample_ids)}, candidate {len(qb.sample_ids)})"
        )
    elif qa.sample_ids != qb.sample_ids:
        notes.append(
            f"same question set, but only {len(shared)} questions are answered in both runs "
            "(an unfinished run?)"
        )
    if not shared:
        raise CompareError(f"runs {baseline.run_id} and {candidate.run_id} share no answered questions")
    for run in (baseline, candidate):
        if run.status != "complete":
            notes.append(f"run {run.run_id} is {run.status}: its numbers cover only what it stored")
    pairs, conflicts = paired_verdicts(con, baseline.run_id, candidate.run_id, shared)
    if conflicts:
        notes.append(
            f"{conflicts} shared questions left out: their labels differ between the runs' label files"
        )
    groups = compare_groups(pairs, level=level, n_boot=n_boot, seed=seed, by_class=by_class)
    new, fixed = changes(pairs)
    amcr = amcr_difference(
        con, baseline.run_id, candidate.run_id, shared, {p.a.image for p in pairs},
        level=level, n_boot=n_boot, seed=seed,
    )  # fmt: skip
    return Comparison(
        baseline=baseline,
        candidate=candidate,
        baseline_questions=qa,
        candidate_questions=qb,
        intersected=qa.fingerprint != qb.fingerprint,
        shared_questions=len(shared),
        label_conflicts=conflicts,
        groups=groups,
        new_hallucinations=new,
        fixed=fixed,
        amcr=amcr,
        level=level,
        n_boot=n_boot,
        seed=seed,
        notes=notes,
    )


def amcr_difference(
    con,
    baseline: str,
    candidate: str,
    shared: Iterable[str],
    images: Iterable[str],
    *,
    level: float,
    n_boot: int,
    seed: int,
) -> PairedDifference | None:
    """Candidate − baseline AMCR (mean correction area of the explained hallucinations) over the
    `shared` questions, with a paired bootstrap over their `images`; None when neither run has a
    correction scan there."""
    shared = set(shared)
    areas = {
        run: [c for c in correction_areas(con, run) if c.sample_id in shared] for run in (baseline, candidate)
    }
    if not areas[baseline] and not areas[candidate]:
        return None
    index = {
        image: i for i, image in enumerate(sorted(set(images) | {c.image for v in areas.values() for c in v}))
    }
    sums = {}
    for run, rows in areas.items():
        m = np.zeros((len(index), 2))  # (G, [sum of correction areas, explanations])
        for c in rows:
            m[index[c.image]] += (c.area, 1)
        sums[run] = m
    return paired_bootstrap(
        sums[baseline], sums[candidate], {"amcr": mean_statistic}, n_boot=n_boot, level=level, seed=seed
    )["amcr"]
