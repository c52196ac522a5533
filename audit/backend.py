"""The model backend of a run: built once per process and configuration (loading a model is the
expensive part), shared by every step and thread of that process. A Dask worker process builds
its own on first use."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from audit.config import AuditConfig

_BACKENDS: dict[str, Any] = {}
_LOCK = threading.Lock()


def model_path(config: AuditConfig) -> str | None:
    """What the backend loads: the probe checkpoint directory for the default model, the model
    directory as given otherwise, or the served model name (vllm-server; None: the one it lists)."""
    if config.uses_probe_model:
        from audit.probe_world import probe_checkpoint

        return str(probe_checkpoint())
    return config.model


def backend_for(config: AuditConfig) -> Any:
    """The backend of `config` in this process (an `eagle.types.Backend`)."""
    key = json.dumps(
        [config.backend, config.model, config.endpoint, dict(config.backend_options)],
        sort_keys=True,
        default=str,
    )
    with _LOCK:
        if key not in _BACKENDS:
            from eagle.backends import build_backend

            _BACKENDS[key] = build_backend(
                config.backend,
                model=model_path(config),
                endpoint=",".join(config.endpoint) or None,
                **dict(config.backend_options),
            )
        return _BACKENDS[key]


def model_id(config: AuditConfig, backend: Any) -> str:
    """The model's name in the store: "probe" for the shipped model, else what the backend says."""
    return "probe" if config.uses_probe_model else backend.model_id


def weights_digest(config: AuditConfig) -> str | None:
    """sha256 over a local checkpoint's weight files (the model's identity for reuse and the run
    record); None for a served model, whose weights this process cannot see."""
    if config.backend == "vllm-server":
        return None
    from auditors.annotations import sha256_file

    path = Path(model_path(config) or "")
    weights = sorted(path.glob("*.safetensors")) if path.is_dir() else []
    if not weights:
        return None
    import hashlib

    h = hashlib.sha256()
    for w in weights:
        h.update(sha256_file(w).encode())
    return h.hexdigest()
