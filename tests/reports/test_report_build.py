"""Report content checked against DuckDB queries over the store (no browser): summary numbers,
trends, per-class rates, cards, escaping of model text, errors, and the CLI."""

from __future__ import annotations

import base64
import io
import json
import math

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from report_html_helpers import cards_json, parse

from reports import ReportError, build_report
from reports.build import script_json


def _float(text: str) -> float | None:
    return None if text == "" else float(text)


def test_summary_numbers_equal_the_metrics_view(report_path, con, audit):
    _, _, runs = audit
    html = report_path.read_text()
    cells = {}
    for el in parse(html).elements:
        a = el["attrs"]
        if el["tag"] == "tr" and "data-label-set" in a:
            current = (a["data-split"], a["data-label-set"])
        if el["tag"] == "td" and "data-metric" in a:
            cells[current + (a["data-metric"],)] = a
    rows = con.execute(
        """SELECT split, label_set, n, precision, recall, f1, accuracy, yes_ratio, unparsed, fp, tn
        FROM metrics
        WHERE run_id = ? AND object_class = 'all' AND label_set IN ('pope', 'repope')""",
        [runs[-1]],
    ).fetchall()
    assert len(rows) == 8  # 3 splits + all, two label sets
    for split, label_set, n, *rates, unparsed, fp, tn in rows:
        for name, value in zip(("precision", "recall", "f1", "accuracy", "yes_ratio"), rates, strict=True):
            assert _float(cells[(split, label_set, name)]["data-value"]) == value, (split, label_set, name)
        assert int(cells[(split, label_set, "n")]["data-value"]) == n
        assert int(cells[(split, label_set, "unparsed")]["data-count"]) == unparsed
        assert _float(cells[(split, label_set, "hallucination_rate")]["data-value"]) == fp / (fp + tn)
    # RePOPE differs from POPE somewhere (the synthetic run relabels a few questions): not copied columns
    assert any(
        cells[(s, "pope", "n")] != cells[(s, "repope", "n")] for s in ("random", "popular", "adversarial")
    )


def test_header_names_the_latest_run_and_its_previous_run(report_path, audit):
    _, _, runs = audit
    text = {
        el["attrs"].get("id"): el["text"]
        for el in parse(report_path.read_text()).elements
        if el["attrs"].get("id")
    }
    assert text["run-id"] == runs[-1]
    assert text["previous-run"] == runs[-2]
    assert text["verdict"] in ("better", "worse", "mixed", "within noise", "no change")


def test_chair_numbers_come_from_the_metrics_view(report_path, con, audit):
    (extra,) = con.execute(
        "SELECT extra FROM metrics WHERE run_id = ? AND benchmark = 'captions' AND object_class = 'all'",
        [audit[2][-1]],
    ).fetchone()
    shown = {
        el["attrs"]["data-metric"]: el["attrs"]["data-value"]
        for el in parse(report_path.read_text()).elements
        if el["tag"] == "strong" and "data-metric" in el["attrs"]
    }
    assert float(shown["chair_i"]) == extra["chair_i"]
    assert float(shown["chair_s"]) == extra["chair_s"]


def test_trend_has_every_complete_run_and_rings_the_shown_one(report_path, con, audit):
    _, _, runs = audit
    html = report_path.read_text()
    elements = parse(html).elements
    rows = [el for el in elements if el["tag"] == "tr" and "data-run" in el["attrs"]]
    assert [r["attrs"]["data-run"] for r in rows] == runs
    assert [r["attrs"].get("aria-current") for r in rows] == [None] * (len(runs) - 1) + ["true"]
    current = [el for el in elements if el["tag"] == "circle" and "current" in el["attrs"].get("class", "")]
    assert [c["attrs"]["data-run"] for c in current] == [runs[-1], runs[-1]]  # one per chart
    # the pooled hallucination rate of each night equals the RePOPE FP / (FP + TN) summed over splits
    expected = dict(
        con.execute(
            """SELECT run_id, sum(fp) / (sum(fp) + sum(tn)) FROM metrics WHERE label_set = 'repope'
        AND object_class = 'all' AND split <> 'all' GROUP BY run_id"""
        ).fetchall()
    )
    cells = [el for el in elements if el["tag"] == "td" and "data-value" in el["attrs"]]
    trend_cells = [c for c in cells if c["attrs"]["data-value"] and c in _cells_of(elements, "trend-table")]
    shown = [float(c["attrs"]["data-value"]) for c in trend_cells][::2]
    assert shown == pytest.approx([expected[r] for r in runs], abs=1e-12)


def _cells_of(elements, table_id):
    out, inside = [], False
    for el in elements:
        if el["tag"] == "table":
            inside = el["attrs"].get("id") == table_id
        elif inside and el["tag"] == "td":
            out.append(el)
    return out


def test_per_class_false_positives_add_up_and_are_sorted(report_path, con, audit):
    elements = parse(report_path.read_text()).elements
    rows = [el for el in elements if el["tag"] == "tr" and "data-class" in el["attrs"]]
    fps = []
    for cell in _cells_of(elements, "class-table")[::8]:  # the FP column comes first after the class header
        fps.append(int(cell["attrs"]["data-sort"]))
    assert len(fps) == len(rows) > 0
    assert fps == sorted(fps, reverse=True)
    (total,) = con.execute(
        "SELECT count(*) FROM answers WHERE run_id = ? AND repope_outcome = 'FP'", [audit[2][-1]]
    ).fetchone()
    assert sum(fps) == total > 0


def test_one_card_per_explained_marked_token(report_path, con, audit):
    data = cards_json(report_path.read_text())
    (expected,) = con.execute(
        """SELECT count(DISTINCT (m.sample_id, m.token_index)) FROM marks m JOIN explanations x
        ON x.run_id = m.run_id AND x.sample_id = m.sample_id
            AND list_contains(x.target_positions, m.token_index)
        WHERE m.run_id = ?""",
        [audit[2][-1]],
    ).fetchone()
    cards = data["cards"]
    assert len(cards) == expected > 5
    assert {c["kind"] for c in cards} >= {"false_positive", "hallucinated_object"}
    for c in cards:
        assert c["heatmap"].startswith("data:image/webp;base64,")
        assert c["image"] in data["images"]
        # a counter token or a caption mention's absence: the correct outcome, so 1 − map drives it
        assert c["view"] == "1 − map"
        assert c["tokenEnd"] > c["tokenIndex"]
        assert len(c["areas"]) == len(c["insertion"]) == len(c["deletion"])
    captions = [c for c in cards if c["kind"] == "hallucinated_object"]
    assert all(c["influence"] and c["influence"][c["tokenIndex"]] is not None for c in captions)
    # object words lean on the image, function words on the prior (the synthetic rule): the colouring shows it
    some = captions[0]
    words = dict(zip([t.strip() for t in some["tokens"]], some["influence"], strict=True))
    assert words.get("a", 1) < 0.2


def test_false_positive_heatmap_is_red_on_the_anchor_object(report_path, audit):
    """The 1 − map view must light up the planted anchor (moon/arrow) behind a star/ring false positive
    and behind a caption's hallucinated star/ring mention."""
    from PIL import Image

    _, world, _ = audit
    gt = {r["image"]: r for r in json.loads((world / "ground_truth.json").read_text())["images"]}
    data = cards_json(report_path.read_text())
    checked = 0
    kinds = set()
    for c in data["cards"]:
        anchor = {"star": "moon", "ring": "arrow"}.get(c["cls"])
        objects = {o["name"]: o["label"] for o in gt[c["imageName"]]["objects"]}
        if c["kind"] not in ("false_positive", "hallucinated_object") or anchor not in objects:
            continue
        if c["labelSet"] not in ("repope", "instances"):
            continue
        rgb = np.asarray(
            Image.open(io.BytesIO(base64.b64decode(c["heatmap"].split(",", 1)[1]))).convert("RGB")
        )
        mask = np.asarray(Image.open(world / gt[c["imageName"]]["mask"])) == objects[anchor]
        redness = rgb[..., 0].astype(float) - rgb[..., 2]
        assert redness[mask].mean() > redness[~mask].mean() + 40, c["sample"]
        checked += 1
        kinds.add(c["kind"])
    assert checked >= 2 and kinds == {"false_positive", "hallucinated_object"}


def test_cause_table_names_the_planted_anchor_first(report_path, con, audit):
    """The report's cause table agrees with the store's causes view, and on the probe world the anchors
    come out on top: the moon for the star, the arrow for the ring."""
    rows = {
        el["attrs"]["data-hallucinated"]: el
        for el in parse(report_path.read_text()).elements
        if el["tag"] == "tr" and "data-hallucinated" in el["attrs"]
    }
    shown = {
        (el["attrs"]["data-driver"], int(el["attrs"]["data-first"]))
        for el in parse(report_path.read_text()).elements
        if el["tag"] == "span" and "data-driver" in el["attrs"]
    }
    first = con.execute(
        """SELECT hallucinated_class, driver_class, count(*) FROM causes
        WHERE run_id = ? AND rank = 1 GROUP BY ALL ORDER BY 1, 3 DESC, 2""",
        [audit[2][-1]],
    ).fetchall()
    assert first and {(d, n) for _, d, n in first} <= shown
    top = {}
    for cls, driver, _ in first:
        top.setdefault(cls, driver)
    assert top.get("star") == "moon" and set(rows) >= {"star"}
    if "ring" in top:
        assert top["ring"] == "arrow"


def test_caption_card_boxes_the_span_and_shows_captions_metrics(report_path, con, audit):
    html = report_path.read_text()
    captions = [c for c in cards_json(html)["cards"] if c["benchmark"] == "captions"]
    assert captions
    for c in captions:
        span = "".join(c["tokens"][c["tokenIndex"] : c["tokenEnd"]]).strip()
        assert span == c["cls"] and c["labelSet"] == "instances"
        assert c["cls"] not in c["label"].split(", ")  # the mentioned class is not among those present
    elements = parse(html).elements
    assert any(el["attrs"].get("id") == "chair-label-set" and el["text"] == "instances" for el in elements)
    (extra,) = con.execute(
        "SELECT extra FROM metrics WHERE run_id = ? AND benchmark = 'captions' AND object_class = 'all'",
        [audit[2][-1]],
    ).fetchone()
    recall = next(
        el for el in elements if el["tag"] == "strong" and el["attrs"].get("data-metric") == "recall"
    )
    assert float(recall["attrs"]["data-value"]) == extra["recall"]


def test_model_text_is_escaped_in_the_html(report_path):
    html = report_path.read_text()
    assert "window.__pwned" in html  # the hostile caption is in the report ...
    assert (
        "<script>window" not in html and '<img src="x.png"' not in html and "<b>bold" not in html
    )  # ... inert
    assert html.count("<script") == 2  # the JSON block and the report's own script
    data = cards_json(html)
    hostile = [c for c in data["cards"] if "__pwned" in (c["answer"] or "")]
    assert hostile and "</script><script>window.__pwned = 1</script>" in hostile[0]["answer"]
    # the script builds cards with textContent only: a regression to innerHTML would reopen the hole
    assert "innerHTML" not in html and "insertAdjacentHTML" not in html and "document.write" not in html


@given(st.text())
def test_script_json_cannot_close_its_script_element(text):
    encoded = str(script_json({"t": text, "u": "</script>" + text}))
    assert "<" not in encoded and ">" not in encoded and "&" not in encoded
    assert "\u2028" not in encoded and "\u2029" not in encoded
    assert json.loads(encoded) == {"t": text, "u": "</script>" + text}


def test_report_of_the_first_run_has_no_previous_run(audit, tmp_path):
    store, _, runs = audit
    html = build_report(store, run_id=runs[0], out=tmp_path / "first.html").read_text()
    assert "none (first complete run of this model)" in html
    assert 'id="verdict"' not in html
    assert "data-verdict" not in html  # no deltas without a previous run


def test_max_cards_and_missing_images(audit, tmp_path):
    store, _, _ = audit
    html = build_report(
        store, out=tmp_path / "r.html", max_cards=3, image_root=tmp_path / "nowhere"
    ).read_text()
    data = cards_json(html)
    assert len(data["cards"]) == 3 and data["images"] == {}
    assert all(c["image"] is None and c["heatmap"] for c in data["cards"])  # heatmap on grey instead


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"run_id": "20000101T000000Z-nope"},
            "run '20000101T000000Z-nope' is not in the store (recent runs: ",
        ),
        ({"model": "no/such-model"}, "no runs of model 'no/such-model' in the store; models with runs: "),
    ],
)
def test_bad_selection_names_what_exists(audit, tmp_path, kwargs, message):
    with pytest.raises(ReportError, match="^" + message.replace("(", r"\(")):
        build_report(audit[0], out=tmp_path / "x.html", **kwargs)
    assert not (tmp_path / "x.html").exists()


def test_empty_and_missing_stores(tmp_path):
    with pytest.raises(ReportError, match="does not exist"):
        build_report(tmp_path / "missing", out=tmp_path / "x.html")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReportError, match="the store has no runs"):
        build_report(tmp_path / "empty", out=tmp_path / "x.html")


def test_cli_writes_the_report_and_translates_errors(audit, tmp_path):
    from eagle_audit.cli import main

    store, _, runs = audit
    out = tmp_path / "cli.html"
    result = CliRunner().invoke(main, ["report", "--store", str(store), "--run", runs[1], "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "wrote " in result.output and out.exists()
    assert f'<span class="mono" id="run-id">{runs[1]}</span>' in out.read_text()
    bad = CliRunner().invoke(main, ["report", "--store", str(store), "--run", "x", "--out", str(out)])
    assert bad.exit_code == 1 and bad.output.startswith("Error: run 'x' is not in the store")
    both = CliRunner().invoke(
        main, ["report", "--store", str(store), "--run", "x", "--latest", "--out", str(out)]
    )
    assert both.exit_code == 2 and "either --run RUN_ID or --latest" in both.output
    assert CliRunner().invoke(main, ["report", "--help"]).exit_code == 0


def test_card_curves_are_finite_probabilities(report_path):
    for c in cards_json(report_path.read_text())["cards"]:
        for name in ("insertion", "deletion"):
            assert all(v is not None and 0 <= v <= 1 and math.isfinite(v) for v in c[name])
        if c["correction"]:
            assert c["correction"]["x"][0] == 0 and c["correction"]["x"][-1] == pytest.approx(1)
            scan = c["correction"]["scan"]
            if c["corrected"]:  # the scan stops at the first right answer, which is at the correction area
                assert scan["y"] == [0.0] * (len(scan["y"]) - 1) + [1.0]
                assert scan["x"][-1] == pytest.approx(c["correctionArea"], abs=1e-4)


def test_a_store_written_by_schema_version_2_still_reports(tmp_path):
    """A real v2 audit (tests/storage/fixtures/v2-audit, written before benchmark plug-ins, maps left
    out): the summary, the class table and the cards come from its old rows."""
    import shutil
    from pathlib import Path

    store = tmp_path / "store"
    shutil.copytree(Path(__file__).parents[1] / "storage" / "fixtures" / "v2-audit", store)
    out = build_report(store, out=tmp_path / "old.html")
    html = out.read_text()
    data = cards_json(html)
    assert len(data["cards"]) == 2
    assert all(c["view"] == "1 − map" and c["counter"] and c["label"] == "no" for c in data["cards"])
    elements = parse(html).elements
    label_sets = {
        el["attrs"]["data-label-set"]
        for el in elements
        if el["tag"] == "tr" and "data-label-set" in el["attrs"]
    }
    assert label_sets == {"pope", "repope"}
    assert any(el["tag"] == "tr" and el["attrs"].get("data-class") == "star" for el in elements)
