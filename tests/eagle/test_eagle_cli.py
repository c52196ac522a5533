"""The explain, bench and probe explain-eval commands: help, argument errors, and a real run of
`explain` on a probe model (an untrained one when the shipped checkpoint is absent)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from eagle_audit.commands.bench import bench
from eagle_audit.commands.explain import explain
from eagle_audit.commands.probe_explain import explain_eval

CHECKPOINT = Path(__file__).resolve().parents[2] / "probe" / "checkpoint"


@pytest.mark.parametrize(
    ("command", "args"),
    [(explain, []), (bench, []), (bench, ["scoring"]), (bench, ["search"]), (explain_eval, [])],
)
def test_every_command_has_help(command, args):
    result = CliRunner().invoke(command, [*args, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output and len(result.output) > 200


@pytest.fixture(scope="module")
def image_file(tmp_path_factory) -> Path:
    from PIL import Image

    from probe.world import make_scene

    path = tmp_path_factory.mktemp("img") / "scene.png"
    Image.fromarray(make_scene(seed=5, index=1).image).save(path)
    return path


def test_explain_needs_exactly_one_answer_source(image_file, tmp_path):
    result = CliRunner().invoke(
        explain, ["--image", str(image_file), "--prompt", "Hi", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2 and "exactly one of --answer TEXT or --generate" in result.output


def test_explain_reports_a_missing_model_directory(image_file, tmp_path):
    args = ["--image", str(image_file), "--prompt", "Hi", "--answer", "Yes", "--out", str(tmp_path)]
    result = CliRunner().invoke(explain, [*args, "--model", str(tmp_path / "nope")])
    assert (
        result.exit_code == 1
        and "Error: no model at" in result.output
        and "config.json missing" in result.output
    )


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    if (CHECKPOINT / "config.json").exists():
        return CHECKPOINT
    from probe.model import build_untrained, save_checkpoint

    path = tmp_path_factory.mktemp("probe-untrained")
    save_checkpoint(*build_untrained(), path)
    return path


@pytest.mark.model
def test_explain_writes_heatmaps_and_json(image_file, model_dir, tmp_path):
    import torch

    torch.set_num_threads(1)
    out = tmp_path / "out"
    args = [
        "--image",
        str(image_file),
        "--prompt",
        "Is there a star in the image?",
        "--answer",
        "Yes",
        "--counter-token",
        "No",
        "--regions",
        "9",
        "--model",
        str(model_dir),
        "--out",
        str(out),
        "--json",
    ]
    result = CliRunner().invoke(explain, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{") :])
    assert summary["targets"][0]["token"].strip() == "No" and summary["answer"] == "Yes"
    assert summary["forward_passes"] > 0 and 0 <= summary["insertion_auc"] <= 1
    for name in ("heatmap.png", "hallucination.png", "explanation.json", "summary.json"):
        assert (out / name).stat().st_size > 0
    from eagle import Explanation

    expl = Explanation.from_dict(json.loads((out / "explanation.json").read_text()))
    assert expl.n_regions == summary["regions"] and np.isfinite(expl.insertion).all()

    bad = CliRunner().invoke(
        explain, [*args[:6], "--targets", "banana", "--model", str(model_dir), "--out", str(out)]
    )
    assert bad.exit_code == 1 and "--targets 'banana' matches no answer token" in bad.output
