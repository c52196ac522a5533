"""AuditConfig and check_inputs: every wrong setting is refused before anything starts, with an
error that names the option; the CLI turns it into one `Error:` line and exit code 2 without
starting Prefect or loading a model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from audit.config import AuditConfig, ConfigError, check_inputs


@pytest.mark.parametrize(
    ("settings", "option", "words"),
    [
        ({"dataset": "coco"}, "--dataset", "unknown dataset"),
        ({"dataset": "repope", "images": "x"}, "--annotations", "needs --annotations"),
        ({"dataset": "repope", "annotations": "x"}, "--images", "needs --images"),
        ({"splits": ("random", "weird")}, "--splits", "unknown split(s) weird"),
        ({"splits": ()}, "--splits", "unknown split"),
        ({"backend": "tgi"}, "--backend", "unknown backend"),
        ({"backend": "vllm-server"}, "--endpoint", "needs --endpoint"),
        ({"endpoint": ("http://x:1",)}, "--endpoint", "only applies to --backend vllm-server"),
        ({"backend": "vllm-server", "endpoint": ("x:8000",)}, "--endpoint", "not an http(s) URL"),
        ({"explain": "some"}, "--explain", "'all', 'none' or a number"),
        ({"search": "greedy"}, "--search", "unknown search"),
        ({"limit": 0}, "--limit", ">= 1"),
        ({"regions": 1}, "--regions", ">= 2"),
        ({"explain_concurrency": 0}, "--explain-concurrency", ">= 1"),
        ({"max_failed_share": 1.5}, "--max-failed-share", "between 0 and 1"),
        ({"run_id": "../etc"}, "--run-id", "is not allowed"),
        ({"benchmark": "caption"}, "--benchmark", "Did you mean: captions?"),
        ({"benchmark": "captions", "dataset": "repope", "images": "x"}, "--instances", "need ground truth"),
        ({"benchmark": "captions", "instances": "i.json"}, "--instances", "applies to --dataset repope"),
        ({"max_new_tokens": 0}, "--max-new-tokens", ">= 1"),
    ],
)
def test_bad_settings_name_their_option(settings, option, words, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        AuditConfig(store=tmp_path, **settings)
    assert err.value.option == option
    assert str(err.value).startswith(option) and words in str(err.value)


def test_captions_take_instances_or_annotations_and_answer_longer(tmp_path: Path) -> None:
    assert AuditConfig(store=tmp_path).answer_tokens == 8
    assert AuditConfig(store=tmp_path, benchmark="captions").answer_tokens == 64
    assert AuditConfig(store=tmp_path, benchmark="captions", max_new_tokens=20).answer_tokens == 20
    for inputs in ({"instances": "i.json"}, {"annotations": "a"}):
        config = AuditConfig(store=tmp_path, benchmark="captions", dataset="repope", images="x", **inputs)
        assert config.source(world=None).vocabulary == "coco"
    with pytest.raises(ConfigError, match=r"--instances: instances file .*i.json.* does not exist"):
        check_inputs(
            AuditConfig(
                store=tmp_path / "s",
                benchmark="captions",
                dataset="repope",
                images=tmp_path,
                instances="i.json",
            )
        )


def test_check_inputs_looks_at_the_file_system_and_the_store(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--model: model directory .*nope.* does not exist"):
        check_inputs(AuditConfig(store=tmp_path / "s", model=str(tmp_path / "nope")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"--model: .* has no config.json"):
        check_inputs(AuditConfig(store=tmp_path / "s", model=str(tmp_path / "empty")))
    with pytest.raises(ConfigError, match=r"--annotations: annotation directory .* does not exist"):
        check_inputs(
            AuditConfig(store=tmp_path / "s", dataset="repope", annotations=tmp_path / "a", images=tmp_path)
        )
    with pytest.raises(ConfigError, match=r"--images: image directory .* does not exist"):
        check_inputs(
            AuditConfig(store=tmp_path / "s", dataset="repope", annotations=tmp_path, images=tmp_path / "i")
        )
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="--store: .* is not a directory"):
        check_inputs(AuditConfig(store=tmp_path / "file"))
    check_inputs(AuditConfig(store=tmp_path / "new", run_id="fresh-id"))  # a new named run is fine


def test_a_complete_run_cannot_be_resumed(tmp_path: Path) -> None:
    from storage.store import RunRecord, Store

    st = Store(tmp_path)
    with st.open_run(RunRecord(model_id="m", backend="hf", run_id="done-run")):
        pass
    with pytest.raises(ConfigError, match="--run-id: run 'done-run' is already complete"):
        check_inputs(AuditConfig(store=tmp_path, run_id="done-run"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "/no/such/model"], "Error: --model: model directory '/no/such/model' does not exist"),
        (["--dataset", "repope", "--annotations", "/no/ann", "--images", "/tmp"], "Error: --annotations:"),
        (["--run-id", "bad/id"], "Error: --run-id: run id 'bad/id' is not allowed"),
        (["--splits", "random,weird"], "Error: --splits: unknown split(s) weird"),
        (["--task-runner", "celery"], "Error: unknown --task-runner 'celery'"),
        (["--benchmark", "chair"], "Error: --benchmark: Unknown benchmark 'chair'."),
        (["--benchmark", "captions", "--dataset", "repope", "--images", "/tmp"], "Error: --instances:"),
    ],
)
def test_the_cli_refuses_bad_inputs_at_once(args, message, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    out = subprocess.run(
        [sys.executable, "-m", "eagle_audit", "audit", "--store", str(tmp_path / "store"), *args],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().splitlines() == [out.stderr.strip().splitlines()[0]]  # one line
    assert out.stderr.startswith(message), out.stderr
    assert not (tmp_path / "store" / ".prefect").exists()  # no Prefect server was started
    assert "Traceback" not in out.stderr
