"""`compare_runs` and `eagle-audit compare` on hand-written runs: every number below is worked out
by hand from the verdicts, and runs over different question sets are refused unless --intersect."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from audit.compare import CompareError, QuestionSetsDiffer, compare_runs, resolve_run
from eagle_audit.cli import main
from storage.store import Store
from tests.support.paired_runs import Q, write_run

# Four images, two questions each: one object present (label yes), one absent (label no). RePOPE
# drops the "no" question of image d (ambiguous), so it has 7 questions to POPE's 8.
QUESTIONS = [
    Q("random/1", "a.jpg", "dog", "yes", "yes"),
    Q("random/2", "a.jpg", "cat", "no", "no"),
    Q("random/3", "b.jpg", "car", "yes", "yes"),
    Q("random/4", "b.jpg", "bus", "no", "no"),
    Q("random/5", "c.jpg", "cup", "yes", "yes"),
    Q("random/6", "c.jpg", "dog", "no", "no"),
    Q("random/7", "d.jpg", "cat", "yes", "yes"),
    Q("random/8", "d.jpg", "bus", "no", None),
]
RIGHT = {q.sample_id: q.pope for q in QUESTIONS}  # every answer right
# the baseline hallucinates a cup on image c; the candidate fixes it but hallucinates on a and b and
# gives an unparseable answer on c's present cup
BASELINE = RIGHT | {"random/6": "yes"}
CANDIDATE = RIGHT | {"random/2": "yes", "random/4": "yes", "random/5": "unparsed"}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("paired") / "store"
    st = Store(root)
    write_run(st, "base-1", "model-a", 1, QUESTIONS, BASELINE)
    write_run(st, "cand-1", "model-b", 2, QUESTIONS, CANDIDATE)
    write_run(st, "base-2", "model-a", 3, QUESTIONS, BASELINE)  # the same answers again, later
    # a --limit run: images a and b only, plus a question the others never asked
    extra = Q("random/9", "e.jpg", "car", "no", "no")
    write_run(st, "limited", "model-b", 4, [*QUESTIONS[:4], extra], CANDIDATE | {"random/9": "yes"})
    write_run(st, "broken", "model-b", 5, QUESTIONS, CANDIDATE, status="failed")
    st.close()
    return root


def test_metrics_differences_and_mcnemar_by_hand(store: Path) -> None:
    c = compare_runs(store, "base-1", "cand-1", n_boot=500)
    assert c.same_question_set and not c.intersected and c.shared_questions == 8 and c.label_conflicts == 0
    g = c.group("repope", "random")
    assert (g.questions, g.images) == (7, 4)
    hr = g.differences["hallucination_rate"]
    # RePOPE negatives: a/cat, b/bus, c/dog. Baseline FP on c/dog: 1/3; candidate on a/cat, b/bus: 2/3
    assert (hr.baseline, hr.candidate, hr.difference) == pytest.approx((1 / 3, 2 / 3, 1 / 3))
    acc = g.differences["accuracy"]
    # baseline 6 of 7 parsed right; candidate: 6 parsed (one unparsed), 4 right (dog, car, cat, c/dog)
    assert (acc.baseline, acc.candidate) == pytest.approx((6 / 7, 4 / 6))
    unparsed = g.differences["unparsed_share"]
    assert (unparsed.baseline, unparsed.candidate) == pytest.approx((0, 1 / 7))
    # McNemar: new errors a/cat, b/bus, c/cup (unparsed); fixed c/dog. 2 P(X <= 1 | 4) = 10/16
    assert (g.mcnemar.new_errors, g.mcnemar.fixed) == (3, 1)
    assert g.mcnemar.p_two_sided == pytest.approx(10 / 16)
    # POPE also labels d/bus, answered "no" by both runs: one more question, the same changes
    pope = c.group("pope", "random")
    assert pope.questions == 8 and (pope.mcnemar.new_errors, pope.mcnemar.fixed) == (3, 1)
    assert pope.differences["hallucination_rate"].difference == pytest.approx(2 / 4 - 1 / 4)
    # "all" pools the splits (one split here) and per-class rows exist over all splits
    assert c.group("repope", "all").questions == 7
    assert c.group("repope", "all", "dog").questions == 2


def test_new_and_fixed_hallucinations_are_listed_per_question(store: Path) -> None:
    c = compare_runs(store, "base-1", "cand-1", n_boot=200)
    new = [
        (x.label_set, x.sample_ids, x.kind, x.baseline_verdict, x.candidate_verdict)
        for x in c.new_hallucinations
    ]
    assert new == [
        ("repope", ("random/2",), "false_positive", "no", "yes"),
        ("repope", ("random/4",), "false_positive", "no", "yes"),
        ("repope", ("random/5",), "unparsed", "yes", "unparsed"),
        ("pope", ("random/2",), "false_positive", "no", "yes"),
        ("pope", ("random/4",), "false_positive", "no", "yes"),
        ("pope", ("random/5",), "unparsed", "yes", "unparsed"),
    ]
    fixed = [(x.label_set, x.sample_ids, x.kind) for x in c.fixed]
    assert fixed == [("repope", ("random/6",), "false_positive"), ("pope", ("random/6",), "false_positive")]


def test_a_run_against_its_repeat_has_no_change(store: Path) -> None:
    c = compare_runs(store, "base-1", "base-2", n_boot=300)
    for g in c.groups:
        assert g.mcnemar.discordant == 0 and g.mcnemar.p_two_sided == 1.0
        for d in g.differences.values():
            assert d.difference in (0, None) and (d.difference is None or d.identical)
    assert c.new_hallucinations == [] and c.fixed == []


def test_model_name_resolves_to_its_latest_complete_run(store: Path) -> None:
    c = compare_runs(store, "model:model-a", "cand-1", n_boot=100)
    assert c.baseline.run_id == "base-2"
    con = Store(store, create=False).connect()
    assert resolve_run(con, "model:model-b").run_id == "limited"  # "broken" is newer but failed
    assert resolve_run(con, "model:model-b", exclude="limited").run_id == "cand-1"
    con.close()
    with pytest.raises(
        CompareError, match="no complete run of model 'nope'.*models in the store: model-a, model-b"
    ):
        compare_runs(store, "model:nope", "cand-1")
    with pytest.raises(CompareError, match="run 'missing' is not in the store"):
        compare_runs(store, "base-1", "missing")


def test_different_question_sets_are_refused_and_intersect_restricts_both(store: Path) -> None:
    with pytest.raises(
        QuestionSetsDiffer, match=r"\(8 questions\).*\(5 questions\).*\(4 shared\).*--intersect"
    ):
        compare_runs(store, "base-1", "limited")
    c = compare_runs(store, "base-1", "limited", intersect=True, n_boot=300)
    assert c.intersected and c.shared_questions == 4 and not c.same_question_set
    assert any("question sets differ" in n for n in c.notes)
    g = c.group("repope", "random")
    # restricted to images a and b: the baseline answers all four right, the candidate adds two FPs
    assert g.questions == 4 and g.images == 2
    hr = g.differences["hallucination_rate"]
    assert (hr.baseline, hr.candidate) == (0.0, 1.0)
    assert (g.mcnemar.new_errors, g.mcnemar.fixed) == (2, 0)
    assert [x.sample_ids[0] for x in c.new_hallucinations if x.label_set == "repope"] == [
        "random/2",
        "random/4",
    ]


def test_the_cli_prints_a_table_json_and_refuses_different_sets(store: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = runner.invoke(main, ["compare", "--store", str(store), "base-1", "cand-1", "--bootstrap", "200"])
    assert out.exit_code == 0, out.output
    assert "3 new hallucinations" not in out.output  # counted per label set: 6
    assert "6 new hallucinations" in out.output and "2 fixed" in out.output
    row = next(line for line in out.output.splitlines() if "hallucination_rate" in line)
    assert "0.333" in row and "0.667" in row and "+0.333" in row and "within noise" in row
    out = runner.invoke(
        main, ["compare", "--store", str(store), "base-1", "cand-1", "--json", "--bootstrap", "200"]
    )
    data = json.loads(out.output)
    assert data["shared_questions"] == 8 and len(data["new_hallucinations"]) == 6
    html = tmp_path / "compare.html"
    out = runner.invoke(main, ["compare", "--store", str(store), "base-1", "cand-1", "--html", str(html)])
    assert out.exit_code == 0 and f"report: {html}" in out.output
    page = html.read_text()
    assert 'id="candidate-run">cand-1<' in page and page.count('class="pair-card"') == 3 + 1  # new + fixed
    out = runner.invoke(main, ["compare", "--store", str(store), "base-1", "limited"])
    assert out.exit_code == 2
    assert out.output.count("Error:") == 1 and "--intersect" in out.output
    out = runner.invoke(
        main, ["compare", "--store", str(store), "base-1", "limited", "--intersect", "--json"]
    )
    assert out.exit_code == 0 and json.loads(out.output)["intersected"] is True
    out = runner.invoke(main, ["compare", "--store", str(tmp_path / "nowhere"), "a", "b"])
    assert out.exit_code == 2 and "does not exist" in out.output
