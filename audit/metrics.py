"""The metrics step: the benchmark's metrics of the run's stored answers (`MetricGroup`s) as
`metrics` rows; the engine keeps the headline of the "all"-class rows for its summary."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from auditors.benchmarks.base import BenchmarkData, MetricGroup


def metrics_rows(
    benchmark: Any, data: BenchmarkData, answer_rows: Iterable[dict[str, Any]], splits: Sequence[str]
) -> list[dict[str, Any]]:
    """Metrics rows of one run: unparsed answers counted, failed samples left out of n."""
    from storage.rows import metrics_row

    return [
        metrics_row(
            g.confusion,
            benchmark=benchmark.name,
            split=g.split,
            label_set=g.label_set,
            object_class=g.object_class,
            n=g.n,
            accuracy_se=g.accuracy_se,
            extra=g.values,
        )
        for g in benchmark.metrics(data, list(answer_rows), splits)
    ]


def headline(benchmark: Any, rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The "all"-class rows with the benchmark's headline metrics (a column, or a key of `extra`)."""
    out = []
    for r in rows:
        if r["object_class"] != "all":
            continue
        extra = r.get("extra") or {}
        out.append(
            {"label_set": r["label_set"], "split": r["split"], "n": r["n"]}
            | {k: r[k] if r.get(k) is not None else extra.get(k) for k in benchmark.headline}
        )
    return out


__all__ = ["MetricGroup", "headline", "metrics_rows"]
