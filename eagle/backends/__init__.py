"""Model access behind one interface (`eagle.types.Backend`): generation with token ids and
logprobs, batched target-token scoring (EAGLE's `Scorer`), `info()` for the run record and
`close()` to release what the backend holds.

Backends are found by name and imported lazily, so `import eagle` never imports transformers
weights, vLLM or an HTTP client:

    >>> from eagle.backends import build_backend
    >>> backend = build_backend("vllm-server", model="probe", endpoint="http://127.0.0.1:8000")
    >>> backend = build_backend("hf", model="path/to/checkpoint", dtype="auto")

| name          | class                                            | runs the model                  |
|---------------|--------------------------------------------------|---------------------------------|
| `hf`          | `eagle.backends.hf:HFBackend`                    | in this process (transformers)  |
| `vllm-server` | `eagle.backends.openai_server:VLLMServerBackend` | vLLM OpenAI-compatible server(s)|
| `vllm-engine` | `eagle.backends.vllm_engine:VLLMEngineBackend`   | vllm.LLM in this process        |
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any

from eagle.types import Backend

# name -> "module:attribute"; each attribute is a class or factory taking (model=..., endpoint=..., **kw).
BACKENDS: dict[str, str] = {
    "hf": "eagle.backends.hf:HFBackend",
    "vllm-server": "eagle.backends.openai_server:VLLMServerBackend",
    "vllm-engine": "eagle.backends.vllm_engine:VLLMEngineBackend",
}


class UnknownBackendError(ValueError):
    """A backend name that is not in BACKENDS."""


def backend_class(name: str) -> Any:
    """The class registered under `name`, imported on first use."""
    if name not in BACKENDS:
        close = difflib.get_close_matches(name, BACKENDS, n=3, cutoff=0.4)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownBackendError(f"Unknown backend {name!r}.{hint} Available: {', '.join(sorted(BACKENDS))}")
    module, attr = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), attr)


def build_backend(name: str, model: Any = None, endpoint: str | None = None, **kw: Any) -> Backend:
    """Build the backend registered under `name`.

    `model` is a checkpoint directory (`hf`, `vllm-engine`: required; the library has no default
    model) or a served model name (`vllm-server`; None: the one model the server lists); `endpoint`
    is one or more comma-separated server URLs (only for `vllm-server`); other keywords (dtype,
    batch_size, concurrency, ...) go to the backend's constructor unchanged.
    """
    cls = backend_class(name)
    if endpoint is not None:
        if name != "vllm-server":
            raise ValueError(
                f"--endpoint {endpoint!r} only applies to --backend vllm-server, not {name!r}: "
                "drop --endpoint or pick --backend vllm-server"
            )
        kw["endpoint"] = endpoint
    if model is None and name in ("hf", "vllm-engine"):
        raise ValueError(
            f"backend {name!r} needs a model: a local checkpoint directory (the eagle-audit CLI uses the "
            "shipped probe checkpoint when --model is not given)"
        )
    return cls(model=model, **kw)


__all__ = ["BACKENDS", "UnknownBackendError", "backend_class", "build_backend"]
