"""What run comparisons read from a store: runs, their question sets, per-question verdicts under
each label set, failed samples and correction areas.

`eagle-audit compare`, `eagle-audit gate` and the report's change badges read runs only through
these functions, so a change of the store's schema touches this module and nothing downstream.
Every value is a bound parameter; `con` is a connection from `Store.connect()`.

The question set of a run is identified by `question_set_fingerprint`: a sha256 over the benchmark,
the splits, the question (sample) ids and the label files' checksums. The engine records it when a
run begins (`runs.question_set`, schema v3); for older runs it is derived from the stored answers
with the same function, so both agree for a complete run.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


def question_set_fingerprint(
    benchmark: str | None, questions: Iterable[tuple[str | None, str]], data_checksums: Mapping[str, str]
) -> str:
    """sha256 of a question set: `questions` are (split, sample id) pairs (split None where the
    benchmark has none), `data_checksums` maps label-file names to their sha256."""
    questions = list(questions)
    blob = json.dumps(
        {
            "benchmark": benchmark,
            "splits": sorted({s for s, _ in questions if s is not None}),
            "questions": sorted({q for _, q in questions}),
            "label_files": sorted(dict(data_checksums).items()),
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass(frozen=True, kw_only=True, slots=True)
class RunRef:
    """A run as comparisons need it."""

    run_id: str
    model_id: str
    started_at: dt.datetime
    status: str  # running | complete | failed
    error: str | None
    benchmark: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "model_id": self.model_id,
            "started_at": self.started_at.isoformat(),
            "status": self.status,
            "error": self.error,
            "benchmark": self.benchmark,
        }


def _rows(con, sql: str, params: list[Any] | dict[str, Any]) -> list[dict[str, Any]]:
    result = con.execute(sql, params)
    names = [d[0] for d in result.description]
    return [dict(zip(names, row, strict=True)) for row in result.fetchall()]


_RUN = "run_id, model_id, started_at, status, error, benchmark"


def find_run(con, run_id: str) -> RunRef | None:
    rows = _rows(con, f"SELECT {_RUN} FROM runs WHERE run_id = ? ORDER BY started_at LIMIT 1", [run_id])
    return RunRef(**rows[0]) if rows else None


def latest_complete_run(
    con, model_id: str, *, before: RunRef | None = None, exclude: str | None = None
) -> RunRef | None:
    """The newest complete run of `model_id` (started before `before` when given), not `exclude`."""
    where, params = ["model_id = $model", "status = 'complete'"], {"model": model_id}
    if before is not None:
        where.append("(started_at < $t OR (started_at = $t AND run_id < $id))")
        params |= {"t": before.started_at, "id": before.run_id}
    if exclude is not None:
        where.append("run_id <> $exclude")
        params["exclude"] = exclude
    rows = _rows(
        con,
        f"SELECT {_RUN} FROM runs WHERE {' AND '.join(where)} ORDER BY started_at DESC, run_id DESC LIMIT 1",
        params,
    )
    return RunRef(**rows[0]) if rows else None


def recent_runs(con, limit: int = 5) -> list[str]:
    return [
        r["run_id"] for r in _rows(con, "SELECT run_id FROM runs ORDER BY started_at DESC LIMIT ?", [limit])
    ]


def model_ids(con) -> list[str]:
    return [r["model_id"] for r in _rows(con, "SELECT DISTINCT model_id FROM runs ORDER BY 1", [])]


@dataclass(frozen=True, kw_only=True, slots=True)
class QuestionSet:
    """A run's question set: its fingerprint (recorded, or derived from the stored answers) and the
    sample ids it has answers for."""

    run_id: str
    fingerprint: str
    recorded: bool  # the fingerprint was recorded when the run began (not derived from answers)
    sample_ids: frozenset[str]
    sampling: dict[str, Any] | None  # how the questions were chosen, when recorded

    def to_dict(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "recorded": self.recorded,
            "questions": len(self.sample_ids),
            "sampling": self.sampling,
        }


def question_set(con, run_id: str) -> QuestionSet:
    """The question set of `run_id` (which must exist)."""
    (run,) = _rows(
        con,
        "SELECT benchmark, data_checksums, question_set, sampling FROM runs WHERE run_id = ? "
        "ORDER BY started_at LIMIT 1",
        [run_id],
    )
    answered = _rows(con, "SELECT DISTINCT split, sample_id FROM answers WHERE run_id = ?", [run_id])
    questions = [(r["split"], r["sample_id"]) for r in answered]
    recorded = run["question_set"]
    sampling = json.loads(run["sampling"]) if run["sampling"] else None
    return QuestionSet(
        run_id=run_id,
        fingerprint=recorded
        or question_set_fingerprint(run["benchmark"], questions, dict(run["data_checksums"] or {})),
        recorded=recorded is not None,
        sample_ids=frozenset(q for _, q in questions),
        sampling=sampling if isinstance(sampling, dict) else None,
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class Verdict:
    """One answered question scored under one label set."""

    sample_id: str
    benchmark: str
    split: str | None
    image: str
    question: str
    object_class: str | None
    label_set: str
    label: str  # yes | no
    verdict: str  # yes | no | unparsed
    outcome: str  # tp | fp | tn | fn | unparsed
    answer_text: str | None


def verdicts(con, run_id: str) -> list[Verdict]:
    """Every scored yes/no answer of the run, once per label set that labels it (POPE and RePOPE,
    or any yes/no benchmark's label sets: the `answer_labels` view); failed samples (no answer),
    unlabelled questions and outcomes that are not yes/no (captions) are left out."""
    rows = _rows(
        con,
        """SELECT sample_id, benchmark, split, image, question, object_class, label_set, label, verdict,
            lower(outcome) AS outcome, answer_text
        FROM answer_labels
        WHERE run_id = $run AND lower(outcome) IN ('tp', 'fp', 'tn', 'fn', 'unparsed')
        ORDER BY label_set, sample_id""",
        {"run": run_id},
    )
    return [Verdict(**r) for r in rows]


@dataclass(frozen=True, slots=True)
class PairedVerdict:
    """The same question under the same label set in two runs."""

    a: Verdict  # baseline
    b: Verdict  # candidate


def paired_verdicts(
    con, baseline: str, candidate: str, sample_ids: Iterable[str]
) -> tuple[list[PairedVerdict], int]:
    """Verdicts of `sample_ids` present in both runs under the same label set, and how many were left
    out because the runs disagree on what the question is (image, text, benchmark) or on its label
    (their label files differ)."""
    keep = set(sample_ids)
    by_key = {(v.label_set, v.sample_id): v for v in verdicts(con, baseline) if v.sample_id in keep}
    pairs, conflicts = [], 0
    for v in verdicts(con, candidate):
        u = by_key.get((v.label_set, v.sample_id))
        if u is None:
            continue
        if (u.image, u.question, u.label, u.benchmark) != (v.image, v.question, v.label, v.benchmark):
            conflicts += 1
            continue
        pairs.append(PairedVerdict(u, v))
    return pairs, conflicts


@dataclass(frozen=True, kw_only=True, slots=True)
class RunHealth:
    """Unique questions asked and how many of them failed (the image could not be read, ...)."""

    questions: int  # unique (image, question) pairs with an answers row
    failed: int  # of those, pairs whose answer row records an error

    @property
    def failed_share(self) -> float | None:
        return self.failed / self.questions if self.questions else None


def run_health(con, run_id: str) -> RunHealth:
    (row,) = _rows(
        con,
        """SELECT count(DISTINCT (image, question)) AS questions,
            count(DISTINCT (image, question)) FILTER (WHERE error IS NOT NULL) AS failed
        FROM answers WHERE run_id = ?""",
        [run_id],
    )
    return RunHealth(questions=int(row["questions"]), failed=int(row["failed"]))


@dataclass(frozen=True, kw_only=True, slots=True)
class CorrectionArea:
    """The correction area of one explained hallucination (its mean over a run is AMCR)."""

    sample_id: str
    image: str
    area: float


def correction_areas(con, run_id: str) -> list[CorrectionArea]:
    """Correction areas of the run's EAGLE explanations that ran a correction scan."""
    rows = _rows(
        con,
        """SELECT x.sample_id, a.image, x.correction_area AS area
        FROM explanations x JOIN answers a ON a.run_id = x.run_id AND a.sample_id = x.sample_id
        WHERE x.run_id = ? AND x.error IS NULL AND x.correction_area IS NOT NULL AND x.method LIKE 'eagle-%'
        ORDER BY x.sample_id, x.target_position""",
        [run_id],
    )
    return [CorrectionArea(**r) for r in rows]


__all__ = [
    "CorrectionArea",
    "PairedVerdict",
    "QuestionSet",
    "RunHealth",
    "RunRef",
    "Verdict",
    "correction_areas",
    "find_run",
    "latest_complete_run",
    "model_ids",
    "paired_verdicts",
    "question_set",
    "question_set_fingerprint",
    "recent_runs",
    "run_health",
    "verdicts",
]
