"""`build_report`: one self-contained HTML audit report for one run of a store.

The page has five parts: a summary (run settings, yes/no metrics per split and label set, CHAIR of
captions, change against the previous run of the model), trends over the model's runs,
false-positive rates (or CHAIR) per object class, the cause table (which ground-truth objects drive
each hallucinated class, where the data has object masks), and one card per explained
hallucination (a caption card boxes the hallucinated span and colours every token by its
perceptual influence). Everything is embedded: images as WebP data URIs,
figures as inline SVG, card data as one JSON block that a small inline script renders a page at a
time (so a report with thousands of cards opens fast). Nothing is fetched from anywhere.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import logging
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from markupsafe import Markup

from reports import figures, images, queries
from reports.changes import headline, judge, judge_difference
from reports.queries import CardRow, ReportError, RunInfo, SplitMetrics

log = logging.getLogger(__name__)

METRIC_COLUMNS = (  # (key, label, which direction is better: "higher", "lower" or None)
    ("precision", "Precision", "higher"),
    ("recall", "Recall", "higher"),
    ("f1", "F1", "higher"),
    ("accuracy", "Accuracy", "higher"),
    ("yes_ratio", "Yes-ratio", None),
    ("unparsed", "Unparsed", "lower"),
    ("hallucination_rate", "Halluc. rate", "lower"),
)
PAGE_SIZE = 20


def script_json(value: Any) -> Markup:
    """JSON safe inside an HTML <script> element: '<', '>', '&' and the JS line separators are
    escaped as \\uXXXX, so text such as '</script>' in model output cannot end the element."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for char, repl in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, repl)
    return Markup(text)


def _r(values: Iterable[float] | None, digits: int = 4) -> list[float | None] | None:
    if values is None:
        return None
    return [None if v is None or not math.isfinite(v) else round(float(v), digits) for v in values]


# `unparsed` is shown as a count with its share; its change is the change of the share.
_PAIRED_METRIC = {"unparsed": "unparsed_share"}
# Settings of the change intervals: the same as `eagle-audit compare`'s defaults, so both agree.
CHANGE_LEVEL, CHANGE_BOOTSTRAP, CHANGE_SEED = 0.95, 2000, 0


def _metric_value(m: SplitMetrics, key: str) -> float | None:
    if key == "unparsed":
        return m.unparsed / m.n if m.n else None
    return getattr(m, key)


Changes = dict[tuple[str, str], dict[str, Any]]  # (split, label set) -> metric -> PairedDifference


def _summary_rows(now: list[SplitMetrics], changes: Changes) -> list[dict[str, Any]]:
    rows = []
    for m in now:
        diffs = changes.get((m.split, m.label_set), {})
        cells = []
        for key, label, better in METRIC_COLUMNS:
            diff = diffs.get(_PAIRED_METRIC.get(key, key))
            cells.append(
                {
                    "key": key,
                    "label": label,
                    "value": _metric_value(m, key),
                    "count": m.unparsed if key == "unparsed" else None,
                    "delta": judge_difference(diff, better) if diff is not None else None,
                }
            )
        rows.append({"m": m, "cells": cells})
    return rows


def _changes_since(con, run: RunInfo, before: RunInfo | None) -> tuple[Changes, dict[str, Any] | None]:
    """Changes since the previous run per (split, label set), on the questions both runs answered
    (paired bootstrap intervals), and a note when the two runs' question sets differ."""
    if before is None:
        return {}, None
    from auditors.comparison import RATES, compare_groups
    from storage.verdicts import paired_verdicts, question_set

    now_q, before_q = question_set(con, run.run_id), question_set(con, before.run_id)
    shared = now_q.sample_ids & before_q.sample_ids
    note = None
    if now_q.fingerprint != before_q.fingerprint:
        note = {"shared": len(shared), "now": len(now_q.sample_ids), "before": len(before_q.sample_ids)}
    pairs, _ = paired_verdicts(con, before.run_id, run.run_id, shared)
    groups = compare_groups(
        pairs, metrics=RATES, level=CHANGE_LEVEL, n_boot=CHANGE_BOOTSTRAP, seed=CHANGE_SEED, by_class=False
    )
    return {(g.split, g.label_set): g.differences for g in groups}, note


def _chair_delta(now: Any, before: Any, key: str) -> Any:
    """A CHAIR change, without an interval (the store keeps CHAIR as totals): never coloured."""
    a, b = (getattr(now, key), getattr(before, key)) if now and before else (None, None)
    return judge(a - b, "lower") if a is not None and b is not None else None


def _questions(con, run_id: str) -> dict[str, Any]:
    from storage.verdicts import question_set

    q = question_set(con, run_id)
    return {"count": len(q.sample_ids), "fingerprint": q.fingerprint, "sampling": q.sampling}


def _verdict(changes: Changes) -> dict[str, Any] | None:
    """Headline change of the pooled RePOPE F1 and hallucination rate against the previous run:
    better or worse only where the interval of the change excludes 0."""
    diffs = changes.get(("all", "repope"))
    if not diffs:
        return None
    f1 = judge_difference(diffs["f1"], "higher")
    hr = judge_difference(diffs["hallucination_rate"], "lower")
    word = headline([f1, hr])
    return None if word is None else {"word": word, "f1": f1, "hallucination_rate": hr}


def _card_payload(card: CardRow, index: int, image_key: str | None, heat_uri: str | None) -> dict[str, Any]:
    tokens = list(card.tokens or [])
    return {
        "id": index,
        "sample": card.sample_id,
        "benchmark": card.benchmark,
        "split": card.split,
        "cls": card.object_class,
        "kind": card.kind,
        "labelSet": card.label_set,
        "label": card.label,
        "question": card.question,
        "answer": card.answer_text,
        "tokens": tokens,
        "tokenIndex": card.token_index,
        "tokenEnd": card.token_end if card.token_end is not None else card.token_index + 1,
        "tokenText": card.token_text,
        "influence": [card.influence.get(i) for i in range(len(tokens))] if card.influence else None,
        "counter": card.counter_token_text,
        "logprob": None if card.logprob is None else round(card.logprob, 4),
        "method": card.method,
        "view": "1 − map" if card.explains_correct_outcome else "map",
        "image": image_key,
        "imageName": card.image,
        "heatmap": heat_uri,
        "areas": _r(card.areas),
        "insertion": _r(card.insertion_curve),
        "deletion": _r(card.deletion_curve),
        "insertionAuc": None if card.insertion_auc is None else round(card.insertion_auc, 4),
        "deletionAuc": None if card.deletion_auc is None else round(card.deletion_auc, 4),
        "correction": _correction(card),
        "correctionArea": None if card.correction_area is None else round(card.correction_area, 4),
        "corrected": card.corrected,
        "correctedAnswer": card.corrected_answer,
    }


def _correction(card: CardRow) -> dict[str, Any] | None:
    """The correction scan as points over the share of the image removed.

    `scan`: the stored `correction_curve`, one value per regenerated answer from k = n regions kept
    downwards (index j = j lowest-ranked regions removed): 1 when that answer was right, else 0 (the
    scan stops at the first right one). `p`: the probability of the correct answer over the same
    axis, from a counter-token explanation's insertion curve (top-k visible = n−k lowest removed).
    """
    areas = card.areas or []
    n = len(areas) - 1
    if n < 1:
        return None
    removed = [1.0 - areas[n - j] for j in range(n + 1)]
    out: dict[str, Any] = {"x": _r(removed), "p": None, "scan": None}
    if card.explains_correct_outcome and card.insertion_curve and len(card.insertion_curve) == n + 1:
        out["p"] = _r([card.insertion_curve[n - j] for j in range(n + 1)])
    if card.correction_curve:
        scan = list(card.correction_curve)[: n + 1]
        out["scan"] = {"x": out["x"][: len(scan)], "y": _r(scan)}
    return out if out["p"] or out["scan"] else None


def _render_cards(
    rows: list[CardRow], store, image_root: Path | None, progress: bool
) -> tuple[list[dict[str, Any]], dict[str, str], int]:
    """Card payloads, the deduplicated image data URIs they reference, and how many maps were missing."""
    pictures: dict[str, str] = {}
    keys: dict[str, str | None] = {}
    last_name, rgb = None, None  # cards come sorted by sample id, so consecutive cards often share an image
    missing = 0
    payloads = []
    iterator: Iterable[tuple[int, CardRow]] = enumerate(rows)
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, total=len(rows), desc="rendering cards", unit="card")
    for i, card in iterator:
        if card.image != last_name:
            last_name, rgb = card.image, images.load_rgb(image_root, card.image)
        if card.image not in keys:
            keys[card.image] = None
            if rgb is not None:
                keys[card.image] = f"i{len(pictures)}"
                pictures[f"i{len(pictures)}"] = images.data_uri(rgb)
        heat = None
        if card.map_path:
            try:
                amap = store.read_map(card.map_path, card.map_sha256)
                heat = images.data_uri(images.heatmap(rgb, amap, hallucination=card.explains_correct_outcome))
            except (OSError, ValueError) as exc:
                missing += 1
                log.warning("map of %s not shown: %s", card.sample_id, exc)
        payloads.append(_card_payload(card, i, keys[card.image], heat))
        if not progress and (i + 1) % 250 == 0:
            log.info("rendered %d / %d cards", i + 1, len(rows))
    return payloads, pictures, missing


def template_environment():
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(
        loader=PackageLoader("reports", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = lambda v, d=3: "–" if v is None else f"{v:.{d}f}"
    env.filters["pct"] = lambda v, d=1: "–" if v is None else f"{100 * v:.{d}f}%"
    env.filters["signed"] = lambda v, d=3: f"{v:+.{d}f}"
    env.filters["when"] = lambda t: "–" if t is None else t.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    env.filters["tojson_pretty"] = lambda v: json.dumps(v, sort_keys=True, ensure_ascii=False)
    return env


def image_root_of(run: RunInfo, store_root: Path, override: str | Path | None) -> Path | None:
    """Where the run's images are: `override`, else the run config's `image_root`, else its `images`
    (the audit's --images), else the probe world the audit generated under the store (its layout
    <store>/datasets/probe-seed{seed}-n{probe_images}/images). The first existing directory wins."""
    if override is not None:
        return Path(override)
    config = run.config
    candidates = [config.get("image_root"), config.get("images")]
    if config.get("dataset") == "probe" and "seed" in config and "probe_images" in config:
        world = f"probe-seed{config['seed']}-n{config['probe_images']}"
        candidates.append(store_root / "datasets" / world / "images")
    for candidate in candidates:
        if isinstance(candidate, str | Path) and str(candidate) and Path(candidate).is_dir():
            return Path(candidate)
    return None


def open_store(store_path: str | os.PathLike[str]):  # -> storage.store.Store
    """The existing store a report reads; ReportError when there is none."""
    from storage.store import Store, StoreNotFoundError

    try:
        return Store(store_path, create=False)
    except (StoreNotFoundError, ValueError) as exc:
        raise ReportError(str(exc)) from exc


def build_report(
    store_path: str | os.PathLike[str],
    run_id: str | None = None,
    model: str | None = None,
    out: str | os.PathLike[str] = "report.html",
    *,
    image_root: str | os.PathLike[str] | None = None,
    max_cards: int | None = None,
    progress: bool = False,
) -> Path:
    """Write the HTML report of one run of the store at `store_path` to `out`; returns its path.

    Args:
        store_path: the store directory an audit wrote (read only; nothing in it changes).
        run_id: the run to report. Default: the latest run (of `model` when given).
        model: model id (as recorded in `runs.model_id`) to pick the latest run of; also checked
            against `run_id`.
        out: the HTML file to write (atomically: a partial report never appears under this name).
        image_root: directory that `answers.image` names are relative to. Default: the run's
            `config["image_root"]`; cards without their image show the heatmap on grey.
        max_cards: cap on hallucination cards (default: all explained hallucinations).
        progress: show a progress bar while rendering cards.

    Example::

        >>> build_report("results/", model="probe/llava-probe-128", out="audit.html")  # doctest: +SKIP
        PosixPath('audit.html')
    """
    store = open_store(store_path)
    con = store.connect()
    try:
        run = queries.select_run(con, run_id, model)
        before = queries.previous_run(con, run)
        metrics_now = queries.split_metrics(con, run.run_id)
        changes, question_note = _changes_since(con, run, before)
        trend = queries.trend(con, run.model_id, include=run.run_id)
        card_rows = queries.cards(con, run.run_id, limit=max_cards)
        context = {
            "run": run,
            "previous": before,
            "summary_rows": _summary_rows(metrics_now, changes),
            "question_note": question_note,
            "questions": _questions(con, run.run_id),
            "change_level": CHANGE_LEVEL,
            "metric_columns": METRIC_COLUMNS,
            "metrics_source": metrics_now[0].source if metrics_now else None,
            "chair": (chair := queries.chair_metrics(con, run.run_id)),
            "chair_classes": queries.chair_classes(con, run.run_id, chair.label_set if chair else None),
            "causes": queries.cause_rows(con, run.run_id),
            "class_label_set": queries.primary_label_set(con, run.run_id),
            "chair_before": queries.chair_metrics(con, before.run_id) if before else None,
            "explained": queries.explanation_summary(con, run.run_id),
            "answer_counts": queries.answer_counts(con, run.run_id),
            "classes": queries.class_rows(con, run.run_id),
        }
    finally:
        con.close()

    chair, chair_before = context["chair"], context["chair_before"]
    context["chair_deltas"] = {key: _chair_delta(chair, chair_before, key) for key in ("chair_i", "chair_s")}
    root = image_root_of(run, store.root, image_root)
    payloads, pictures, missing_maps = _render_cards(card_rows, store, root, progress)
    by_run = {p.run_id: p for p in trend}
    now_point = by_run.get(run.run_id)
    points = {
        key: [figures.Point(key=p.run_id, when=p.started_at, value=getattr(p, key)) for p in trend]
        for key in ("hallucination_rate", "f1")
    }
    context.update(
        generated_at=dt.datetime.now(dt.UTC),
        verdict=_verdict(changes),
        trend=trend,
        trend_now=now_point,
        hallucination_svg=figures.trend_svg(
            points["hallucination_rate"],
            highlight=run.run_id,
            title="Hallucination rate (RePOPE FPR)",
            better="lower",
        ),
        f1_svg=figures.trend_svg(points["f1"], highlight=run.run_id, title="F1 (RePOPE)", better="higher"),
        cards_total=len(payloads),
        cards_json=script_json(
            {
                "cards": payloads,
                "images": pictures,
                "pageSize": PAGE_SIZE,
                "palette": list(figures.INFLUENCE_PALETTE),
            }
        ),
        card_classes=sorted({p["cls"] for p in payloads if p["cls"]}),
        card_splits=sorted({p["split"] or "captions" for p in payloads}),
        card_kinds=sorted({p["kind"] for p in payloads}),
        card_label_sets=sorted({p["labelSet"] for p in payloads}),
        image_root=root,
        images_found=len(pictures),
        missing_maps=missing_maps,
        ramp_css=images.ramp_css(),
        influence_css=figures.influence_css(),
        palette=figures.INFLUENCE_PALETTE,
        highlight=figures.HIGHLIGHT,
    )
    env = template_environment()
    script = env.get_template("_partials/_script.js").render()
    # The page's one script is allowed by its hash: even markup that slipped through escaping could
    # not run a script of its own, and default-src 'none' blocks every fetch.
    context.update(
        script=Markup(script), script_hash=base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    )
    html = env.get_template("report.html").render(**context)
    return write_atomic(Path(out), html)


def write_atomic(out: Path, html: str) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, out)
    log.info("wrote report %s (%.1f MB)", out, out.stat().st_size / 1e6)
    return out


__all__ = ["ReportError", "build_report", "script_json"]
