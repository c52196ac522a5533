"""A benchmark added as one file (tests/audit/partners_benchmark.py, outside the package) registers
and runs end to end: engine, store, example queries and report, with no change to any of them."""

from __future__ import annotations

from pathlib import Path

import pytest

from audit import AuditConfig, ConfigError, run_audit
from auditors.benchmarks import benchmark_names, get_benchmark, register, unregister
from storage.queries import EXAMPLES, run_named
from storage.store import Store
from tests.reports.report_html_helpers import cards_json, parse

pytestmark = [pytest.mark.slow, pytest.mark.model]


@pytest.fixture
def partners():
    register("partners", "tests.audit.partners_benchmark:PARTNERS")
    yield get_benchmark("partners")
    unregister("partners")


def test_unknown_names_suggest_the_registered_ones(partners) -> None:
    assert {"pope", "captions", "partners"} <= set(benchmark_names())
    with pytest.raises(ConfigError, match="--benchmark: Unknown benchmark 'partner'. Did you mean: partners"):
        AuditConfig(store="s", benchmark="partner")
    with pytest.raises(ValueError, match="already registered"):
        register("pope", partners)


def test_a_benchmark_in_one_file_runs_end_to_end(partners, tmp_path: Path) -> None:
    result = run_audit(
        AuditConfig(store=tmp_path / "store", benchmark="partners", probe_images=16, seed=6, regions=12)
    )
    assert result.status == "complete" and result.benchmark == "partners"
    store = Store(tmp_path / "store")
    answers = store.query("SELECT * FROM answer_labels WHERE run_id = ?", [result.run_id]).to_pylist()
    assert len(answers) == result.questions > 0
    assert {a["label_set"] for a in answers} == {"truth"} and {a["benchmark"] for a in answers} == {
        "partners"
    }
    fps = [a for a in answers if a["outcome"] == "FP"]
    assert fps and result.marks == len(fps) and result.explained == result.targets == len(fps)
    (metric,) = [m for m in result.metrics if m["split"] == "all"]
    assert metric["label_set"] == "truth" and metric["n"] == len(answers)
    assert metric["precision"] == pytest.approx(sum(a["outcome"] == "TP" for a in answers) / sum(
        a["outcome"] in ("TP", "FP") for a in answers
    ))  # fmt: skip
    # the example queries and the cause table take the new label set as they are
    con = store.connect()
    rates = run_named(con, EXAMPLES["hallucination_rate_by_class_and_night"], label_set="truth").to_pylist()
    assert sum(r["hallucinations"] for r in rates) == len(fps)
    causes = run_named(con, EXAMPLES["hallucination_causes"], run_id=result.run_id).to_pylist()
    assert causes and all(r["driver_class"] in ("moon", "arrow") for r in causes if r["ranked_first"])
    # the report shows its metrics row, its per-class table and its cards
    html = Path(result.report).read_text()
    label_sets = {el["attrs"].get("data-label-set") for el in parse(html).elements if el["tag"] == "tr"}
    assert "truth" in label_sets
    cards = cards_json(html)["cards"]
    assert len(cards) == len(fps) and {c["labelSet"] for c in cards} == {"truth"}
    assert all(c["view"] == "1 − map" and c["label"] == "no" for c in cards)
