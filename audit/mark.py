"""The mark step: the benchmark marks every stored answer that disagrees with a label set (`marks`
rows) and names the hallucinations to explain (`Target`s); the engine keeps one target per item
and token span, the first in the run's order (the benchmark lists its preferred label set first)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict
from typing import Any

from audit.data import sample_order
from auditors.benchmarks.base import Item, Target
from eagle.types import Backend


def mark_answers(
    benchmark: Any, items: Sequence[Item], answer_rows: Iterable[dict[str, Any]], backend: Backend
) -> tuple[list[dict[str, Any]], list[Target]]:
    """Marks rows and targets of the run's answers, in item then sample order, so the same answers
    always give the same marks and targets. Rows of failed samples are skipped."""
    from auditors.marking import TokenMarker

    order = sample_order(items)
    item_of = {sample.sample_id: item for item in items for sample in item.samples}
    tokenizer = getattr(backend, "tokenizer", None)
    marker = TokenMarker.from_tokenizer(tokenizer) if tokenizer is not None else None
    marks: list[dict[str, Any]] = []
    targets: dict[tuple[str, tuple[int, ...]], Target] = {}
    rows = sorted((r for r in answer_rows if r["sample_id"] in order), key=lambda r: order[r["sample_id"]])
    for row in rows:
        if row.get("error") or row.get("answer_text") is None or not row.get("token_ids"):
            continue
        found = benchmark.mark(
            item_of[row["sample_id"]], row, marker or TokenMarker.from_backend(backend, row["question"])
        )
        marks += [asdict(m) for m in found.marks]
        for t in found.targets:
            targets.setdefault((t.sample_id, t.positions), t)
    return marks, list(targets.values())
