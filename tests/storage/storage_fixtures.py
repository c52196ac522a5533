"""Builders for tests of storage/: a small synthetic store with hand-computed answers (two models,
three nights, one failed run)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from auditors.benchmarks.yesno import stored_outcome
from storage.store import RunRecord, Store

UTC = dt.UTC
MODEL_A = "org/model-a"
MODEL_B = "model b"  # a space: its directory name gets a hash suffix
# stores written by older schema versions (see fixtures/README.md)
FIXTURES = Path(__file__).parent / "fixtures"


def night(day: int) -> dt.datetime:
    return dt.datetime(2025, 1, day, 2, 0, tzinfo=UTC)


def record(model: str, day: int, run_id: str, **kw) -> RunRecord:
    return RunRecord(
        run_id=run_id,
        model_id=model,
        backend="transformers",
        started_at=night(day),
        decoding={"temperature": 0.0, "max_new_tokens": 8},
        seed=0,
        data_checksums={"coco_repope_random.json": "ab" * 32},
        code_version="test",
        benchmark="pope",
        **kw,
    )


def answer(sample_id: str, cls: str, verdict: str, pope: str | None, repope: str | None, image: str) -> dict:
    text = {"yes": "Yes", "no": "No"}.get(verdict, "Maybe?")
    return {
        "sample_id": sample_id,
        "benchmark": "pope",
        "split": "random",
        "question_id": int(sample_id[1:]),
        "image": image,
        "question": f"Is there a {cls} in the image?",
        "object_class": cls,
        "answer_text": text,
        "verdict": verdict,
        "labels": {ls: label for ls, label in (("pope", pope), ("repope", repope)) if label is not None},
        "outcomes": {
            ls: stored_outcome(label, verdict) for ls, label in (("pope", pope), ("repope", repope)) if label
        },
        "token_ids": [7],
        "tokens": [" " + text],
        "logprobs": [-0.25],
        "finish_reason": "stop",
    }


def explanation(sample_id: str, order: list[int]) -> dict:
    n = len(order)
    return {
        "sample_id": sample_id,
        "target_position": 0,
        "target_token_id": 9,
        "method": "eagle-exact",
        "region_order": order,
        "areas": [k / n for k in range(n + 1)],
        "insertion_curve": [0.1] * (n + 1),
        "deletion_curve": [0.9] * (n + 1),
        "insertion_curves": [[0.1] * (n + 1)],
        "deletion_curves": [[0.9] * (n + 1)],
        "modality_step": [0.5],
        "modality_area": [0.25],
        "sensitive": [True],
        "params": {"lambda1": 1.0},
    }


def metric(accuracy: float) -> dict:
    return {
        "benchmark": "pope",
        "split": "all",
        "label_set": "repope",
        "object_class": "all",
        "n": 10,
        "accuracy": accuracy,
    }


def build(root: Path) -> dict[str, str]:
    """Write the synthetic store; returns run ids by name."""
    store = Store(root)
    runs = {}

    runs["a1"] = store.begin_run(record(MODEL_A, 1, "a1"))
    first_night = [
        answer("s1", "star", "yes", "no", "no", "img1"),  # FP / FP
        answer("s2", "star", "no", "no", "no", "img2"),  # TN / TN
        answer("s3", "moon", "yes", "yes", "yes", "img3"),  # TP / TP
        answer("s4", "moon", "no", "no", "no", "img4"),  # TN / TN
        answer("s5", "moon", "unparsed", "no", "no", "img5"),  # unparsed
        answer("s6", "star", "yes", "yes", "no", "img6"),  # TP under POPE, FP under RePOPE
    ]
    store.write("answers", first_night[:3], "a1")  # two writes: two part files
    store.write("answers", first_night[3:], "a1")
    store.write(
        "marks",
        [
            {"sample_id": s, "token_index": 0, "label_set": "repope", "kind": "false_positive"}
            for s in ("s1", "s6")
        ],
        "a1",
    )
    store.write("explanations", [explanation("s1", [2, 0, 1, 3]), explanation("s2", [0, 5])], "a1")
    store.write("metrics", [metric(0.8)], "a1")
    store.finish_run("a1", "complete")

    runs["a2"] = store.begin_run(record(MODEL_A, 2, "a2"))
    store.write(
        "answers",
        [
            answer("s1", "star", "yes", "no", "no", "img1"),  # FP
            answer("s2", "star", "yes", "no", "no", "img2"),  # FP
            answer("s4", "moon", "no", "no", "no", "img4"),  # TN
            answer("s7", "moon", "yes", "no", None, "img7"),  # FP under POPE, removed by RePOPE
        ],
        "a2",
    )
    store.write("explanations", [explanation("s1", [0, 1, 2, 3]), explanation("s2", [1, 0])], "a2")
    store.write("metrics", [metric(0.6)], "a2")
    store.finish_run("a2", "complete")

    runs["a3"] = store.begin_run(record(MODEL_A, 3, "a3"))
    store.write("answers", [answer("s1", "star", "yes", "no", "no", "img1")], "a3")
    store.write("metrics", [metric(0.1)], "a3")
    store.finish_run("a3", "failed", error="RuntimeError: server went away")

    runs["b1"] = store.begin_run(record(MODEL_B, 2, "b1"))
    store.write("answers", [answer("s1", "star", "no", "no", "no", "img1")], "b1")
    store.write("metrics", [metric(0.9)], "b1")
    store.finish_run("b1", "complete")
    store.close()
    return runs


def as_v1(root: Path) -> None:
    """Turn a v2 store into what schema version 1 wrote: explanations without `cache_key`."""
    import pyarrow.parquet as pq

    for part in (root / "explanations").rglob("*.parquet"):
        table = pq.read_table(part)
        table = table.drop_columns(["cache_key"]).replace_schema_metadata(
            {b"eagle_audit.schema_version": b"1"}
        )
        pq.write_table(table, part)
