"""The mark step: every yes/no verdict that disagrees with a label set becomes a marked token, and
each hallucinated pair becomes one EAGLE target (its counter token: " No" for a hallucinated " Yes")."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from audit.data import sample_order, split_sample_id
from eagle.types import Backend

LABEL_SETS_BY_PRIORITY = ("repope", "pope")  # a pair's target follows RePOPE where it has a label


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
        return split_sample_id(self.pair_id)[1]


def mark_answers(
    answer_rows: Iterable[dict[str, Any]], backend: Backend
) -> tuple[list[dict[str, Any]], list[Target]]:
    """Marks rows for every verdict that disagrees with a label set, and the EAGLE targets: one per
    unique (image, question) pair, RePOPE labels first, POPE where RePOPE has no label; both in
    sample order, so the same answers always give the same marks and targets."""
    from auditors.marking import TokenMarker

    tokenizer = getattr(backend, "tokenizer", None)
    marker = TokenMarker.from_tokenizer(tokenizer) if tokenizer is not None else None
    marks: list[dict[str, Any]] = []
    targets: dict[tuple[str, str], Target] = {}
    for row in sorted(answer_rows, key=lambda r: sample_order(r["sample_id"])):
        if row.get("error") or row.get("answer_text") is None or not row.get("token_ids"):
            continue
        m = marker or TokenMarker.from_backend(backend, row["question"])
        for label_set in LABEL_SETS_BY_PRIORITY:
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
            if mark.counter_id is None:  # a phrase decision ("There is no dog") has no counter token
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
    return marks, sorted(targets.values(), key=lambda t: sample_order(t.pair_id))
