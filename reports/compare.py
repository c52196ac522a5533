"""`build_comparison_report`: one self-contained HTML page comparing two runs of a store.

It renders a comparison as `eagle-audit compare --json` gives it (`audit.compare.Comparison.to_dict()`):
both runs' rates per label set and split with the change and its paired bootstrap interval
("within noise" when the interval covers 0), the McNemar test, per-class hallucination rates, and
side-by-side cards for the new hallucinations and the fixed ones: the question, both answers and,
where a run explained its error, that run's EAGLE map (1 − map of the correct answer's explanation:
red is what drives the hallucination). Like the audit report it embeds everything, fetches nothing
and runs no script.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import logging
import os
from pathlib import Path
from typing import Any

from reports import images, queries
from reports.build import image_root_of, open_store, template_environment, write_atomic
from reports.changes import judge_difference
from reports.queries import CardRow

log = logging.getLogger(__name__)

COLUMNS = (  # (metric, label, better) of the summary table; --json has precision and recall too
    ("f1", "F1", "higher"),
    ("accuracy", "Accuracy", "higher"),
    ("yes_ratio", "Yes-ratio", None),
    ("hallucination_rate", "Halluc. rate", "lower"),
    ("unparsed_share", "Unparsed", "lower"),
)
CLASS_COLUMNS = ("hallucination_rate", "accuracy")  # of the per-class table


def _side(card: CardRow | None, rgb: Any, store) -> dict[str, Any] | None:
    """One run's explanation of a pair: the heatmap as a data URI and how to read it."""
    if card is None or not card.map_path:
        return None
    try:
        amap = store.read_map(card.map_path, card.map_sha256)
    except (OSError, ValueError) as exc:
        log.warning("map of %s not shown: %s", card.sample_id, exc)
        return None
    return {
        "heatmap": images.data_uri(images.heatmap(rgb, amap, hallucination=card.explains_counter)),
        "view": "1 − map" if card.explains_counter else "map",
        "method": card.method,
        "correction_area": card.correction_area,
        "corrected_answer": card.corrected_answer,
    }


def _cards(
    changes: list[dict[str, Any]],
    limit: int,
    explained: dict[str, dict],
    roots: dict[str, Path | None],
    store,
) -> list[dict[str, Any]]:
    """One card per (image, question) pair, with every label set under which it changed."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for c in changes:
        key = (c["image"], c["question"])
        if key not in merged:
            if len(merged) >= limit:
                continue
            merged[key] = dict(c, label_sets=[c["label_set"]], labels={c["label_set"]: c["label"]})
        else:
            merged[key]["label_sets"].append(c["label_set"])
            merged[key]["labels"][c["label_set"]] = c["label"]
            merged[key]["sample_ids"] = list(dict.fromkeys([*merged[key]["sample_ids"], *c["sample_ids"]]))
    out = []
    for (image, question), card in merged.items():
        rgb = images.load_rgb(roots["candidate"], image)
        if rgb is None:
            rgb = images.load_rgb(roots["baseline"], image)
        card["picture"] = images.data_uri(rgb) if rgb is not None else None
        for side in ("baseline", "candidate"):
            row = explained[side].get((image, question))
            # the run's explanation of this very question (a pair is explained under its first sample id)
            mine = row is not None and row.sample_id in card["sample_ids"]
            card[f"{side}_map"] = _side(row if mine else None, rgb, store)
        out.append(card)
    return out


def build_comparison_report(
    store_path: str | os.PathLike[str],
    comparison: dict[str, Any],
    out: str | os.PathLike[str],
    *,
    max_cards: int = 200,
    image_root: str | os.PathLike[str] | None = None,
) -> Path:
    """Write the comparison report of `comparison` (a `Comparison.to_dict()` of runs in the store at
    `store_path`) to `out`; returns its path. At most `max_cards` cards per section."""
    store = open_store(store_path)
    con = store.connect()
    try:
        runs = {
            side: queries.select_run(con, comparison[side]["run_id"]) for side in ("baseline", "candidate")
        }
        explained = {
            side: {(c.image, c.question): c for c in queries.cards(con, runs[side].run_id)}
            for side in ("baseline", "candidate")
        }
    finally:
        con.close()
    roots = {side: image_root_of(runs[side], store.root, image_root) for side in runs}
    rows = []
    for g in comparison["groups"]:
        columns = (
            COLUMNS
            if g["object_class"] == "all"
            else [c for m in CLASS_COLUMNS for c in COLUMNS if c[0] == m]
        )
        cells = [
            {
                "metric": metric,
                "d": g["metrics"][metric],
                "delta": judge_difference(g["metrics"][metric], better),
            }
            for metric, _, better in columns
        ]
        rows.append({"g": g, "cells": cells})
    amcr = comparison.get("amcr")
    context = {
        "c": comparison,
        "runs": runs,
        "summary_rows": [r for r in rows if r["g"]["object_class"] == "all"],
        "class_rows": [r for r in rows if r["g"]["object_class"] != "all"],
        "columns": COLUMNS,
        "amcr": amcr,
        "amcr_delta": judge_difference(amcr, "lower") if amcr else None,
        "new_cards": _cards(comparison["new_hallucinations"], max_cards, explained, roots, store),
        "fixed_cards": _cards(comparison["fixed"], max_cards, explained, roots, store),
        "max_cards": max_cards,
        "generated_at": dt.datetime.now(dt.UTC),
        "ramp_css": images.ramp_css(),
        "script_hash": base64.b64encode(hashlib.sha256(b"").digest()).decode(),  # the page runs no script
    }
    html = template_environment().get_template("compare.html").render(**context)
    return write_atomic(Path(out), html)


__all__ = ["build_comparison_report"]
