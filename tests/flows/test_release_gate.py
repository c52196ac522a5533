"""The release gate end to end with real models: a probe model with a stronger planted bias (made in
the test from the shipped checkpoint) fails the committed gate.toml against the shipped model, the
flow run that audits it ends Failed (so Prefect's notifications fire), and the shipped model passes
against its own previous run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from audit import AuditConfig, run_audit
from eagle_audit.cli import main
from tests.support.biased_probe import plant_bias

pytestmark = [pytest.mark.slow, pytest.mark.model, pytest.mark.usefixtures("prefect_harness")]

REPO = Path(__file__).resolve().parents[2]
POLICY = REPO / "gate.toml"
SMALL = {"probe_images": 24, "regions": 16, "explain": "2", "report": False}


@pytest.fixture(scope="module")
def biased(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("biased") / "checkpoint"
    plant_bias(out, steps=30, scenes=256, threads=1)  # circle -> ring, 30 steps: ~30 s of one core
    return out


def test_a_stronger_planted_bias_fails_the_gate_and_the_shipped_model_passes_itself(biased, tmp_path) -> None:
    from flows.audit_flow import audit_flow

    store = tmp_path / "store"
    shipped = run_audit(AuditConfig(store=store, **SMALL))  # last night's audit of the shipped model
    # tonight's audit of the same model, gated by the committed policy against its previous run
    args = [
        "--no-prefect",
        "--store",
        str(store),
        "--probe-images",
        "24",
        "--regions",
        "16",
        "--explain",
        "2",
    ]
    out = CliRunner().invoke(main, ["audit", *args, "--no-report", "--gate", str(POLICY)])
    assert out.exit_code == 0, out.output
    assert "Gate PASSED" in out.output and f"baseline {shipped.run_id} (probe)" in out.output
    assert "halluc. rate" in out.output and "FP" in out.output  # the summary's new columns

    # a candidate with a stronger planted bias, audited by the flow and gated against the shipped model
    state = audit_flow(
        store=str(store),
        model=str(biased),
        gate=str(POLICY),
        gate_baseline="model:probe",
        return_state=True,
        **SMALL,
    )
    assert state.is_failed(), state
    assert "release gate failed" in state.message and "hallucination_rate" in state.message

    # why, as the gate command reports it: the rise is significant, not a wobble
    out = CliRunner().invoke(
        main,
        [
            "gate",
            "--store",
            str(store),
            "--policy",
            str(POLICY),
            f"model:{biased}",
            "--baseline",
            "model:probe",
            "--json",
        ],
    )
    assert out.exit_code == 1, out.output
    verdict = json.loads(out.output)
    checks = {(c["limit"]["metric"], c["limit"]["bound"]): c for c in verdict["checks"]}
    hr = checks[("hallucination_rate", "max_increase")]
    assert hr["status"] == "fail" and hr["bound"] > 0.02, hr  # the lower bound of the rise, not just the rise
    assert checks[("failed_share", "max")]["status"] == "pass"
    # the shipped model's runs share every question and answer: nothing new, nothing fixed
    out = CliRunner().invoke(
        main, ["compare", "--store", str(store), shipped.run_id, "model:probe", "--json"]
    )
    same = json.loads(out.output)
    assert same["same_question_set"] and same["new_hallucinations"] == same["fixed"] == []
