"""The audit report's changes since the previous run carry their uncertainty: a change whose paired
bootstrap interval covers 0 reads "within noise" (never red or green), the intervals are the ones
`eagle-audit compare` computes, and a previous run over another question set is named and the
comparison restricted to the shared questions."""

from __future__ import annotations

from pathlib import Path

import pytest
from report_html_helpers import parse

from audit.compare import compare_runs
from reports import build_report
from storage.store import Store
from tests.support.paired_runs import grid, write_run

QUESTIONS = grid(30)
BASE = {q.sample_id: q.pope for q in QUESTIONS} | {"random/1": "yes"}


def _deltas(html: str) -> dict[tuple[str, str, str], dict[str, str]]:
    """(split, label set, metric) -> the attributes of the change under that cell."""
    out, current, cell = {}, None, None
    for el in parse(html).elements:
        a = el["attrs"]
        if el["tag"] == "tr" and "data-label-set" in a:
            current = (a["data-split"], a["data-label-set"])
        elif el["tag"] == "td" and "data-metric" in a:
            cell = a["data-metric"]
        elif el["tag"] == "span" and "data-verdict" in a and current and cell:
            out[current + (cell,)] = a
    return out


def _report(store: Path, run: str, tmp_path: Path) -> str:
    return build_report(store, run_id=run, out=tmp_path / f"{run}.html").read_text()


def test_a_small_rise_is_within_noise_and_a_large_one_is_worse(tmp_path: Path) -> None:
    store = tmp_path / "store"
    st = Store(store)
    write_run(st, "base", "m", 1, QUESTIONS, BASE)
    write_run(st, "noise", "m", 2, QUESTIONS, BASE | {"random/4": "yes"})  # +1 FP of 60 negatives
    write_run(st, "worse", "m", 3, QUESTIONS, BASE | {f"random/{3 * i + 1}": "yes" for i in range(8, 24)})
    st.close()
    noise = _deltas(_report(store, "noise", tmp_path))
    hr = noise[("all", "repope", "hallucination_rate")]
    assert float(hr["data-low"]) <= 0 <= float(hr["data-high"])
    assert hr["data-verdict"] == "within noise" and "worse" not in hr["class"].split()
    assert noise[("all", "repope", "recall")]["data-verdict"] == "no change"  # the same yes answers
    html = _report(store, "worse", tmp_path)
    worse = _deltas(html)
    hr = worse[("all", "repope", "hallucination_rate")]
    assert hr["data-verdict"] == "worse" and float(hr["data-low"]) > 0 and "worse" in hr["class"].split()
    assert worse[("all", "repope", "precision")]["data-verdict"] == "worse"
    header = {el["attrs"].get("id"): el["text"] for el in parse(html).elements if el["attrs"].get("id")}
    assert header["verdict"] == "worse"
    assert 'id="question-set-warning"' not in html
    # the report's intervals are `eagle-audit compare`'s (same level, replicates and seed)
    c = compare_runs(store, "noise", "worse")
    d = c.group("repope", "all").differences["hallucination_rate"]
    assert float(hr["data-low"]) == pytest.approx(d.low) and float(hr["data-high"]) == pytest.approx(d.high)


def test_a_different_previous_question_set_is_named_and_changes_use_the_shared_questions(
    tmp_path: Path,
) -> None:
    store = tmp_path / "store"
    st = Store(store)
    write_run(st, "full", "m", 1, QUESTIONS, BASE)
    # a later --limit run: images 0-9, with new FPs on images 5-9
    limited = BASE | {f"random/{3 * i + 1}": "yes" for i in range(5, 10)}
    write_run(st, "limited", "m", 2, QUESTIONS[:30], limited)
    st.close()
    html = _report(store, "limited", tmp_path)
    warning = next(el for el in parse(html).elements if el["attrs"].get("id") == "question-set-warning")
    text = " ".join(warning["text"].split())
    assert "different question set" in text and "(90 questions; this run 30)" in text
    assert "computed on the 30 questions both runs answered" in text
    hr = _deltas(html)[("all", "repope", "hallucination_rate")]
    # on the shared images 0-9: 1 of 20 negatives before, 6 of 20 now (not 1 of 60 before)
    shown = [el for el in parse(html).elements if el["attrs"].get("data-metric") == "hallucination_rate"]
    assert float(shown[-1]["attrs"]["data-value"]) == pytest.approx(6 / 20)
    assert hr["title"].startswith("change +0.2500")
    # a report without a previous run has neither changes nor a warning
    first = _report(store, "full", tmp_path)
    assert "data-verdict" not in first and "question-set-warning" not in first
