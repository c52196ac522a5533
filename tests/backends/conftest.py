"""Fixtures for backend tests: the probe checkpoint, one real vLLM server per session, and the
in-process reference backend.

The vLLM environment comes from `scripts/setup_vllm_env.sh` (run by scripts/test.sh). Without it
the `vllm` tests skip with the reason outside CI and FAIL in CI (CI=true), so they never silently
stop running there.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from eagle.backends.serving import ManagedServer, VLLMEnvironmentMissing, vllm_python

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_vllm_env() -> Path:
    try:
        return vllm_python()
    except VLLMEnvironmentMissing as e:
        if IN_CI:
            pytest.fail(f"CI=true but the vLLM environment is missing: {e}")
        pytest.skip(f"vLLM environment missing ({e}); run `bash scripts/setup_vllm_env.sh`")


@pytest.fixture(scope="session")
def vllm_env() -> Path:
    """The vLLM environment's Python; skips outside CI and fails in CI when it is missing."""
    return require_vllm_env()


@pytest.fixture(scope="session")
def probe_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped probe checkpoint, or (before it exists) an untrained one with the same layout."""
    from probe.model import CHECKPOINT_DIR

    if (CHECKPOINT_DIR / "config.json").exists():
        return CHECKPOINT_DIR
    from probe.model import build_untrained, save_checkpoint

    model, processor = build_untrained()
    return save_checkpoint(model, processor, tmp_path_factory.mktemp("probe-untrained"))


@pytest.fixture(scope="session")
def vllm_server(vllm_env: Path, probe_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory):
    """One real vLLM OpenAI-compatible server (float32, eager) serving the probe model as "probe"."""
    python = vllm_env
    log_path = tmp_path_factory.mktemp("vllm") / "server.log"
    server = ManagedServer(
        model=probe_checkpoint,
        served_model_name="probe",
        python=python,
        log_path=log_path,
        startup_timeout_s=900,
    )
    with server:
        yield server


@pytest.fixture(scope="session")
def hf_backend(probe_checkpoint: Path):
    import torch

    from eagle.backends.hf import HFBackend

    torch.set_num_threads(1)
    return HFBackend(model=probe_checkpoint, model_id="probe")


@pytest.fixture(scope="session")
def server_backend(vllm_server: ManagedServer):
    from eagle.backends.openai_server import VLLMServerBackend

    backend = VLLMServerBackend(model="probe", endpoint=vllm_server.url, concurrency=16)
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def family_checkpoint(tmp_path_factory: pytest.TempPathFactory):
    """`family_checkpoint(name)`: the tiny random-weight checkpoint of a model family
    (tests/support/tiny_families.py), built once per session on first use."""
    from tests.support.tiny_families import build

    root = tmp_path_factory.mktemp("families")
    built: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in built:
            built[name] = build(name, root / name)
        return built[name]

    return get
