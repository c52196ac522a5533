"""Shared `--backend/--model/--endpoint/--concurrency/--timeout/--deadline/--dtype` options for every
command that calls a model, the one function that turns them into backend constructor keywords, and
the one that builds the backend (library errors -> ClickException).

    @click.command()
    @backend_options
    def cmd(backend, model, endpoint, concurrency, timeout, deadline, dtype, ...):
        b = backend_from_options(backend, model, endpoint, concurrency, timeout=timeout,
                                 deadline=deadline, dtype=dtype)

A command that hands the backend to other code (the audit's config) passes
`backend_keywords(backend, concurrency=..., timeout=..., deadline=..., dtype=...)` on instead.
The CLI's default model is the shipped probe checkpoint (`model_path`): the library itself has no
default model, so `eagle` never imports the probe harness.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from eagle.backends.hf_checkpoint import DTYPES
from eagle.backends.http_transport import DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT_S
from eagle.backends.openai_server import DEFAULT_CONCURRENCY

BACKEND_NAMES = ("hf", "vllm-server", "vllm-engine")
PROBE_MODEL = "probe"  # --model value (and default) naming the shipped probe checkpoint
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
        click.option(
            "--dtype",
            type=click.Choice(DTYPES),
            default="auto",
            show_default=True,
            help="Weights dtype (hf, vllm-engine); auto: the checkpoint's own. A server's dtype is set where "
            "it is started (eagle-audit serve --dtype).",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def model_path(backend: str, model: str | None) -> str | None:
    """What the backend loads: the shipped probe checkpoint for no --model (or "probe") with a
    local backend, else --model as given (a directory, or a served model name for vllm-server)."""
    if backend != "vllm-server" and model in (None, PROBE_MODEL):
        from probe.model import CHECKPOINT_DIR

        return str(CHECKPOINT_DIR)
    return model


def backend_keywords(
    backend: str,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    timeout: float | None = None,
    deadline: float | None = None,
    dtype: str = "auto",
    **kw: Any,
) -> dict[str, Any]:
    """The backend constructor keywords the options mean for `backend` (what an audit records and
    passes on); options that do not apply to it fail naming the option."""
    if backend == "vllm-server":
        if dtype != "auto":
            raise click.UsageError(
                f"--dtype {dtype} does not apply to --backend vllm-server: the server's dtype is set "
                "where it is started (eagle-audit serve --dtype)"
            )
        server = {"concurrency": concurrency, "timeout_s": timeout, "deadline_s": deadline}
        return {**{k: v for k, v in server.items() if v is not None}, **kw}
    for name, value in (("--timeout", timeout), ("--deadline", deadline)):
        if value is not None:
            raise click.UsageError(
                f"{name} applies to --backend vllm-server only: --backend {backend} runs the model in "
                "this process"
            )
    return {"dtype": dtype, **kw}


def backend_from_options(
    backend: str,
    model: str | None,
    endpoint: str | None,
    concurrency: int = DEFAULT_CONCURRENCY,
    *,
    timeout: float | None = None,
    deadline: float | None = None,
    dtype: str = "auto",
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
    keywords = backend_keywords(
        backend, concurrency=concurrency, timeout=timeout, deadline=deadline, dtype=dtype, **kw
    )
    if backend != "vllm-server" and model in (None, PROBE_MODEL):
        keywords.setdefault("model_id", PROBE_MODEL)
    try:
        built = build_backend(backend, model_path(backend, model), endpoint, **keywords)
    except (BackendError, FileNotFoundError, ImportError, ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    if backend == "vllm-server":
        try:
            _ = built.model_id  # reach the server now: a wrong URL or model fails here, clearly
        except BackendError as exc:
            built.close()
            raise click.ClickException(str(exc)) from exc
    return built
