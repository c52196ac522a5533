"""Shared `--backend/--model/--endpoint/--concurrency/--timeout/--deadline` options for every command
that calls a model, the one function that turns them into backend constructor keywords, and the one
that builds the backend (library errors -> ClickException).

    @click.command()
    @backend_options
    def cmd(backend, model, endpoint, concurrency, timeout, deadline, ...):
        b = backend_from_options(backend, model, endpoint, concurrency, timeout=timeout, deadline=deadline)

A command that hands the backend to other code (the audit's config) passes
`backend_keywords(backend, concurrency=..., timeout=..., deadline=...)` on instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from eagle.backends.http_transport import DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT_S
from eagle.backends.openai_server import DEFAULT_CONCURRENCY

BACKEND_NAMES = ("hf", "vllm-server", "vllm-engine")
_SECONDS = click.FloatRange(min=0, min_open=True)


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
        click.option(
            "--timeout",
            type=_SECONDS,
            default=None,
            metavar="SECONDS",
            help=f"Limit for one request to a server, answer included (vllm-server; default "
            f"{DEFAULT_TIMEOUT_S:g}). A failed request is tried {DEFAULT_MAX_RETRIES} more times.",
        ),
        click.option(
            "--deadline",
            type=_SECONDS,
            default=None,
            metavar="SECONDS",
            help="Limit for one call to a server over all its retries and their backoff (vllm-server; "
            "default: none beyond --timeout x attempts).",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def backend_keywords(
    backend: str,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    timeout: float | None = None,
    deadline: float | None = None,
    **kw: Any,
) -> dict[str, Any]:
    """The backend constructor keywords the options mean for `backend` (what an audit records and
    passes on); server options given to an in-process backend fail naming the option."""
    if backend == "vllm-server":
        server = {"concurrency": concurrency, "timeout_s": timeout, "deadline_s": deadline}
        return {**{k: v for k, v in server.items() if v is not None}, **kw}
    for name, value in (("--timeout", timeout), ("--deadline", deadline)):
        if value is not None:
            raise click.UsageError(
                f"{name} applies to --backend vllm-server only: --backend {backend} runs the model in "
                "this process"
            )
    return dict(kw)


def backend_from_options(
    backend: str,
    model: str | None,
    endpoint: str | None,
    concurrency: int = DEFAULT_CONCURRENCY,
    *,
    timeout: float | None = None,
    deadline: float | None = None,
    **kw: Any,
) -> Any:
    """Build the chosen backend; errors name the option to fix."""
    from eagle.backends import build_backend
    from eagle.backends.errors import BackendError

    if backend == "vllm-server" and not endpoint:
        raise click.ClickException(
            "--backend vllm-server needs --endpoint URL (e.g. http://127.0.0.1:8000; "
            "`eagle-audit serve probe` starts a local server)"
        )
    keywords = backend_keywords(backend, concurrency=concurrency, timeout=timeout, deadline=deadline, **kw)
    try:
        built = build_backend(backend, model, endpoint, **keywords)
    except (BackendError, FileNotFoundError, ImportError, ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    if backend == "vllm-server":
        try:
            _ = built.model_id  # reach the server now: a wrong URL or model fails here, clearly
        except BackendError as exc:
            built.close()
            raise click.ClickException(str(exc)) from exc
    return built
