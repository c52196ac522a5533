"""Shared `--backend/--model/--endpoint/--concurrency` options for every command that calls a
model, and the one function that turns them into a backend (library errors -> ClickException).

    @click.command()
    @backend_options
    def cmd(backend, model, endpoint, concurrency, ...):
        b = backend_from_options(backend, model, endpoint, concurrency)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from eagle.backends.openai_server import DEFAULT_CONCURRENCY

BACKEND_NAMES = ("hf", "vllm-server", "vllm-engine")


def backend_options(f: Callable) -> Callable:
    options = [
        click.option(
            "--backend",
            type=click.Choice(BACKEND_NAMES),
            default="hf",
            show_default=True,
            help="hf: in-process transformers; vllm-server: vLLM OpenAI-compatible server(s) at --endpoint; "
            "vllm-engine: vllm.LLM in this process.",
        ),
        click.option(
            "--model",
            default=None,
            help="Model directory (hf, vllm-engine) or served model name (vllm-server; default: the one the "
            "server lists). Default: the shipped probe model.",
        ),
        click.option(
            "--endpoint",
            default=None,
            help="vLLM server URL(s), comma-separated replicas used in turn, "
            "e.g. http://gpu1:8000,http://gpu2:8000. "
            "API key: $EAGLE_AUDIT_API_KEY.",
        ),
        click.option(
            "--concurrency",
            type=click.IntRange(min=1),
            default=DEFAULT_CONCURRENCY,
            show_default=True,
            help="Requests in flight at once (vllm-server).",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def backend_from_options(
    backend: str, model: str | None, endpoint: str | None, concurrency: int = DEFAULT_CONCURRENCY, **kw: Any
) -> Any:
    """Build the chosen backend; errors name the option to fix."""
    from eagle.backends import build_backend
    from eagle.backends.errors import BackendError

    if backend == "vllm-server":
        if not endpoint:
            raise click.ClickException(
                "--backend vllm-server needs --endpoint URL (e.g. http://127.0.0.1:8000; "
                "`eagle-audit serve probe` starts a local server)"
            )
        kw["concurrency"] = concurrency
    try:
        built = build_backend(backend, model, endpoint, **kw)
        if backend == "vllm-server":
            _ = built.model_id  # reach the server now: a wrong URL or model fails here, clearly
        return built
    except (BackendError, FileNotFoundError, ImportError, ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
