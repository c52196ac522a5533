"""The metrics step: confusion metrics per split (and all), label set and object class (and all),
from the run's stored answers, with image-clustered bootstrap intervals on the totals."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from auditors.annotations import AnnotationSet

BOOTSTRAP_REPLICATES = 500


def metrics_rows(
    annotations: AnnotationSet, answer_rows: Iterable[dict[str, Any]], splits: Sequence[str]
) -> list[dict[str, Any]]:
    """Metrics rows of one run: unparsed answers counted, failed samples left out of n."""
    from auditors.benchmarks.pope import score

    answers = {
        (r["split"], int(r["question_id"])): r["answer_text"]
        for r in answer_rows
        if r.get("answer_text") is not None
    }
    report = score(annotations, answers)
    rows: list[dict[str, Any]] = []
    for label_set, per_split in report.confusion.items():
        for split in [*splits, "all"]:
            conf = per_split.get(split)
            if conf is None or conf.n == 0:
                continue
            ci = report.intervals(label_set, split, metrics=("accuracy", "f1"), n_boot=BOOTSTRAP_REPLICATES)  # type: ignore[arg-type]
            rows.append(_metric_row(label_set, split, "all", conf, ci))
            for cls, c in sorted(report.per_class(label_set, split).items()):  # type: ignore[arg-type]
                rows.append(_metric_row(label_set, split, cls, c, None))
    return rows


def _metric_row(label_set: str, split: str, cls: str, c: Any, ci: dict[str, Any] | None) -> dict[str, Any]:
    """One metrics row; `ci` holds 95% intervals for the "all" rows. accuracy_se is the
    normal-approximation standard error read off the interval: width / 3.92."""
    from storage.rows import metrics_row

    extra: dict[str, float] = {}
    se = None
    for name, iv in (ci or {}).items():
        if iv.low is not None and iv.high is not None:
            extra[f"{name}_ci_low"] = iv.low
            extra[f"{name}_ci_high"] = iv.high
            if name == "accuracy":
                se = (iv.high - iv.low) / 3.92
    return metrics_row(
        c, benchmark="pope", split=split, label_set=label_set, object_class=cls, accuracy_se=se, extra=extra
    )
