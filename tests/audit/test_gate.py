"""The release gate on hand-written runs: pass, fail and cannot-judge, a regression that noise could
explain passing where a real one fails, policy files checked, and the CLI's exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from audit.gate import PolicyError, load_policy, parse_policy, run_gate
from eagle_audit.cli import main
from storage.store import Store
from tests.support.paired_runs import grid, write_run

REPO = Path(__file__).resolve().parents[2]

# 30 images with one present and two absent objects each (RePOPE = POPE labels here).
QUESTIONS = grid(30)
RIGHT = {q.sample_id: q.pope for q in QUESTIONS}
# one false positive on each of 2 images for the baseline
BASE = RIGHT | {"random/1": "yes", "random/4": "yes"}
# + one more FP on one more image: a rise of 1/60 that one image carries (noise)
NOISE = BASE | {"random/7": "yes"}
# + FPs on 12 more images: a real rise (2/60 -> 14/60)
WORSE = BASE | {f"random/{3 * i + 1}": "yes" for i in range(10, 22)}


def policy(*limits: dict, **gate) -> object:
    return parse_policy({"gate": {"bootstrap": 1000, **gate}, "limit": list(limits)}, source="test.toml")


HR = {"metric": "hallucination_rate", "label_set": "repope", "split": "all", "max_increase": 0.0}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("gate") / "store"
    st = Store(root)
    write_run(st, "base", "m", 1, QUESTIONS, BASE, correction_areas={"random/1": 0.2, "random/4": 0.3})
    write_run(st, "same", "m", 2, QUESTIONS, BASE, correction_areas={"random/1": 0.2, "random/4": 0.3})
    write_run(st, "noise", "m", 3, QUESTIONS, NOISE)
    write_run(st, "worse", "m", 4, QUESTIONS, WORSE)
    write_run(st, "first", "other", 5, QUESTIONS, BASE)  # the only run of its model
    # a --limit run (another question set): images 0-9 only, with FPs on images 2-9
    write_run(
        st, "short", "m", 6, QUESTIONS[:30], BASE | {f"random/{3 * i + 1}": "yes" for i in range(2, 10)}
    )
    write_run(st, "crashed", "m", 7, QUESTIONS, BASE, status="failed")
    write_run(st, "flaky", "m", 8, QUESTIONS, BASE, failed=["random/0", "random/3"])
    st.close()
    return root


def test_the_same_answers_pass_and_a_real_rise_fails(store: Path) -> None:
    p = policy(HR, baseline="base")
    same = run_gate(store, p, "same")
    assert same.verdict == "pass" and same.exit_code == 0
    assert same.checks[0].value == 0 and same.checks[0].bound == 0
    worse = run_gate(store, p, "worse")
    assert worse.verdict == "fail" and worse.exit_code == 1
    check = worse.checks[0]
    assert check.value == pytest.approx(14 / 60 - 2 / 60)
    assert check.bound > 0 and check.status == "fail"
    assert "lower bound" in check.reason and "FAIL" in worse.explain()


def test_a_rise_within_noise_passes_and_says_so(store: Path) -> None:
    result = run_gate(store, policy(HR, baseline="base"), "noise")
    check = result.checks[0]
    assert check.value == pytest.approx(1 / 60)  # the hallucination rate did rise ...
    assert check.bound <= 0 and result.verdict == "pass"  # ... but one image out of 30 could do that
    assert "within noise" in check.reason


def test_a_tolerated_increase_needs_evidence_beyond_it(store: Path) -> None:
    # the rise is +0.2; a limit of 0.1 fails only if the lower bound exceeds 0.1, a limit of 0.3 never
    loose = dict(HR, max_increase=0.3)
    assert run_gate(store, policy(loose, baseline="base"), "worse").verdict == "pass"
    mid = dict(HR, max_increase=0.05)
    assert run_gate(store, policy(mid, baseline="base"), "worse").verdict == "fail"


def test_decrease_limits_and_absolute_limits(store: Path) -> None:
    f1_drop = {"metric": "f1", "label_set": "repope", "split": "all", "max_decrease": 0.0}
    f1_min = {"metric": "f1", "label_set": "pope", "split": "random", "min": 0.9}
    unparsed = {"metric": "unparsed_share", "max": 0.0}
    result = run_gate(store, policy(f1_drop, f1_min, unparsed, baseline="base"), "worse")
    drop, floor, share = result.checks
    # worse: TP 30, FP 14 -> F1 = 60 / 74; the baseline's 60 / 62
    assert drop.status == "fail" and drop.value == pytest.approx(60 / 74 - 60 / 62) and drop.bound < 0
    assert floor.status == "fail" and floor.value == pytest.approx(60 / 74)
    assert share.status == "pass" and share.value == 0
    assert result.verdict == "fail"


def test_failed_share_and_amcr(store: Path) -> None:
    failed = {"metric": "failed_share", "max": 0.01}
    amcr = {"metric": "amcr", "max": 0.25}
    flaky = run_gate(store, policy(failed), "flaky")
    assert flaky.checks[0].status == "fail" and flaky.checks[0].value == pytest.approx(2 / 90)
    assert run_gate(store, policy(dict(failed, max=0.05)), "flaky").verdict == "pass"
    ok = run_gate(store, policy(failed), "same")
    assert ok.verdict == "pass" and ok.checks[0].value == 0
    # AMCR of "same": (0.2 + 0.3) / 2 = 0.25 <= 0.25; "noise" explained nothing: cannot judge
    assert run_gate(store, policy(amcr), "same").checks[0].value == pytest.approx(0.25)
    assert run_gate(store, policy(amcr), "same").verdict == "pass"
    assert run_gate(store, policy(amcr), "noise").verdict == "cannot judge"
    change = run_gate(store, policy({"metric": "amcr", "max_increase": 0.0}, baseline="base"), "same")
    assert change.verdict == "pass" and change.checks[0].value == 0


def test_missing_data_cannot_be_judged(store: Path) -> None:
    # no earlier run of the model: the change limit cannot be judged (a min limit still can)
    first = run_gate(store, policy(HR, {"metric": "f1", "min": 0.5}), "first")
    assert first.verdict == "cannot judge" and first.exit_code == 2
    assert [c.status for c in first.checks] == ["cannot judge", "pass"]
    assert "no earlier complete run of model 'other'" in first.checks[0].reason
    # "previous" is the model's latest complete run before the candidate: base for same
    assert run_gate(store, policy(HR), "same").baseline.run_id == "base"
    # a failed candidate
    crashed = run_gate(store, policy(HR, baseline="base"), "crashed")
    assert crashed.verdict == "cannot judge" and "is failed" in crashed.checks[0].reason
    # different question sets: not judged unless intersect
    short = run_gate(store, policy(HR, baseline="base"), "short")
    assert short.verdict == "cannot judge" and "different question sets" in short.checks[0].reason
    inter = run_gate(store, policy(HR, baseline="base", intersect=True), "short")
    assert inter.verdict == "fail" and inter.shared_questions == 30
    # a failed limit wins over one that could not be judged
    mixed = run_gate(store, policy(HR, {"metric": "f1", "min": 0.99}), "first")
    assert mixed.verdict == "fail"


def test_policy_files_are_checked(tmp_path: Path) -> None:
    committed = load_policy(REPO / "gate.toml")
    assert committed.baseline == "previous" and committed.level == 0.05 and len(committed.limits) >= 5
    assert {lim.metric for lim in committed.limits} >= {"hallucination_rate", "f1", "failed_share", "amcr"}
    bad = {
        "metric = 'f2'\nmin = 1": r"limit 1: unknown metric 'f2'; choose one of precision",
        "metric = 'f1'\nmin = 1\nmax = 2": r"limit 1 \(f1\): give exactly one of",
        "metric = 'f1'\nmax_increase = -1": r"must be >= 0",
        "metric = 'f1'\nmin = 0.5\nsplit = 'rnd'": r"unknown split 'rnd'",
        "metric = 'amcr'\nmax = 1\nlabel_set = 'pope'": r"a run metric takes no label_set",
        "metric = 'f1'\nminimum = 0.5": r"unknown key\(s\) minimum",
    }
    for body, message in bad.items():
        path = tmp_path / "p.toml"
        path.write_text(f"[[limit]]\n{body}\n")
        with pytest.raises(PolicyError, match=message):
            load_policy(path)
    (tmp_path / "p.toml").write_text("[gate]\nlevel = 0.7\n[[limit]]\nmetric = 'f1'\nmin = 0.5\n")
    with pytest.raises(PolicyError, match=r"level must be a number in \(0, 0.5\)"):
        load_policy(tmp_path / "p.toml")
    (tmp_path / "p.toml").write_text("[gate\n")
    with pytest.raises(PolicyError, match="not valid TOML"):
        load_policy(tmp_path / "p.toml")
    with pytest.raises(PolicyError, match="cannot read policy file"):
        load_policy(tmp_path / "missing.toml")


def test_cli_exit_codes_and_json(store: Path, tmp_path: Path) -> None:
    path = tmp_path / "gate.toml"
    path.write_text(
        "[gate]\nbaseline = 'base'\nbootstrap = 500\n"
        "[[limit]]\nmetric = 'hallucination_rate'\nlabel_set = 'repope'\nsplit = 'all'\nmax_increase = 0.0\n"
    )
    runner = CliRunner()

    def gate(*args: str):
        return runner.invoke(main, ["gate", "--store", str(store), "--policy", str(path), *args])

    passed = gate("same")
    assert passed.exit_code == 0 and passed.output.startswith("Gate PASSED"), passed.output
    failed = gate("worse")
    assert failed.exit_code == 1 and "Gate FAILED" in failed.output
    assert "FAIL  hallucination_rate (repope, all) max increase 0" in failed.output
    cannot = gate("first", "--baseline", "previous")
    assert cannot.exit_code == 2 and "Gate CANNOT JUDGE" in cannot.output
    data = json.loads(gate("worse", "--json").output)
    assert data["verdict"] == "fail" and data["exit_code"] == 1 and data["checks"][0]["bound"] > 0
    assert gate("short").exit_code == 2 and gate("short", "--intersect").exit_code == 1
    unknown = gate("nope")
    assert (
        unknown.exit_code == 2
        and unknown.output.count("Error:") == 1
        and "not in the store" in unknown.output
    )
    path.write_text("[[limit]]\nmetric = 'f2'\nmin = 1\n")
    bad = gate("same")
    assert bad.exit_code == 2 and "Error:" in bad.output and "unknown metric 'f2'" in bad.output
