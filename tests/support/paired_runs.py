"""Hand-written runs for compare and gate tests: each question's verdict is given, so every metric,
difference and McNemar count can be worked out by hand. Written through the real `storage.Store`.

A question is `Q(sample_id, image, object, pope_label, repope_label)`; a run is its verdicts by
sample id ("yes", "no" or "unparsed").

Example::

    >>> qs = [Q("random/1", "a.jpg", "dog", "no", "no")]
    >>> write_run(store, "r1", "model-a", 1, qs, {"random/1": "yes"})  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from auditors.benchmarks.yesno import stored_outcome
from storage.store import RunRecord, Store

CHECKSUMS = {"coco_pope_random.json": "ab" * 32, "coco_repope_random.json": "cd" * 32}


@dataclass(frozen=True)
class Q:
    sample_id: str  # "<split>/<question id>"
    image: str
    object: str
    pope: str | None
    repope: str | None

    @property
    def split(self) -> str:
        return self.sample_id.split("/")[0]


def grid(images: int) -> list[Q]:
    """`images` images with one present object (dog, label yes) and two absent ones (cat, bus),
    question ids 3i, 3i+1, 3i+2 in the random split; RePOPE labels equal POPE's."""
    return [
        q
        for i in range(images)
        for q in (
            Q(f"random/{3 * i}", f"{i}.jpg", "dog", "yes", "yes"),
            Q(f"random/{3 * i + 1}", f"{i}.jpg", "cat", "no", "no"),
            Q(f"random/{3 * i + 2}", f"{i}.jpg", "bus", "no", "no"),
        )
    ]


def write_run(
    store: Store | str | Path,
    run_id: str,
    model: str,
    day: int,
    questions: Sequence[Q],
    verdicts: Mapping[str, str | None],
    *,
    status: str = "complete",
    checksums: Mapping[str, str] = CHECKSUMS,
    failed: Sequence[str] = (),
    correction_areas: Mapping[str, float] | None = None,
    texts: Mapping[str, str] | None = None,
) -> str:
    """Write one run answering `questions` with `verdicts[sample_id]` (default "no"); `failed` sample
    ids get an error and no answer; `correction_areas` adds one explanation per sample id; `texts`
    replaces the answer text of some sample ids (the verdict stays as given)."""
    st = store if isinstance(store, Store) else Store(store)
    record = RunRecord(
        run_id=run_id,
        model_id=model,
        backend="transformers",
        started_at=dt.datetime(2025, 5, day, 2, 0, tzinfo=dt.UTC),
        decoding={"temperature": 0.0},
        seed=0,
        data_checksums=dict(checksums),
        code_version="test",
        benchmark="pope",
    )
    st.begin_run(record)
    rows = []
    for q in questions:
        verdict = verdicts.get(q.sample_id, "no")
        error = "cannot read image" if q.sample_id in failed else None
        text = None if error else {"yes": "Yes", "no": "No"}.get(verdict or "", "Perhaps.")
        text = (texts or {}).get(q.sample_id, text) if not error else None
        labels = {ls: label for ls, label in (("pope", q.pope), ("repope", q.repope)) if label is not None}
        rows.append(
            {
                "sample_id": q.sample_id,
                "benchmark": "pope",
                "split": q.split,
                "question_id": int(q.sample_id.split("/")[1]),
                "image": q.image,
                "question": f"Is there a {q.object} in the image?",
                "object_class": q.object,
                "answer_text": text,
                "verdict": None if error else verdict,
                "labels": labels,
                "outcomes": None if error else {k: stored_outcome(v, verdict) for k, v in labels.items()},
                "token_ids": None if error else [7],
                "tokens": None if error else [" " + text],
                "logprobs": None if error else [-0.1],
                "finish_reason": None if error else "stop",
                "error": error,
            }
        )
    st.write("answers", rows, run_id)
    if correction_areas:
        st.write(
            "explanations",
            [
                {
                    "sample_id": sid,
                    "target_position": 0,
                    "method": "eagle-efficient",
                    "correction_area": area,
                    "corrected": area < 1,
                }
                for sid, area in correction_areas.items()
            ],
            run_id,
        )
    if status != "running":
        st.finish_run(run_id, status, error="too many failed samples" if status == "failed" else None)
    return run_id
