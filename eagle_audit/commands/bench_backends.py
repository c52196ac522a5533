"""`eagle-audit bench backends`: masked images scored per second through a vLLM server (bounded
concurrency vs one request at a time) and in-process transformers, side by side in one run, and
how well their probabilities agree. Registered on the `bench` group."""

from __future__ import annotations

import json
import platform

import click

from eagle.backends.openai_server import DEFAULT_CONCURRENCY
from eagle_audit.commands.backend_options import backend_keywords


@click.command("backends")
@click.option(
    "--endpoint",
    default=None,
    help="vLLM server URL(s) serving the probe model. Default: start one (`serve probe`) for the run.",
)
@click.option("--model", default=None, help="Served model name (default: the one the server lists).")
@click.option(
    "--checkpoint", default=None, help="Model directory for in-process scoring (default: the probe)."
)
@click.option("--images", "n_images", type=click.IntRange(min=4), default=256, show_default=True)
@click.option(
    "--per-call", type=click.IntRange(min=1), default=32, show_default=True,
    help="Masked images per score call (one scene; about one EAGLE search step).",
)  # fmt: skip
@click.option(
    "--concurrency", type=click.IntRange(min=2), default=DEFAULT_CONCURRENCY, show_default=True,
    help="Requests in flight at once in the concurrent mode.",
)  # fmt: skip
@click.option(
    "--callers", type=click.IntRange(min=1), default=4, show_default=True,
    help="Score calls at once in the concurrent mode, as `audit --explain-concurrency N` makes them.",
)  # fmt: skip
@click.option(
    "--timeout", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
    help="Limit for one request to the server, answer included (as in `explain`).",
)  # fmt: skip
@click.option(
    "--deadline", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
    help="Limit for one call to the server over all its retries (as in `explain`).",
)  # fmt: skip
@click.option("--repeats", type=click.IntRange(min=1), default=2, show_default=True, help="Best of N runs.")
@click.option(
    "--threads", type=click.IntRange(min=1), default=1, show_default=True, help="torch CPU threads."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def backends(
    endpoint: str | None,
    model: str | None,
    checkpoint: str | None,
    n_images: int,
    per_call: int,
    concurrency: int,
    callers: int,
    timeout: float | None,
    deadline: float | None,
    repeats: int,
    threads: int,
    as_json: bool,
) -> None:
    """Scoring throughput: server concurrent vs sequential vs in-process, plus agreement."""
    import contextlib
    import os

    import torch

    from eagle.backends.errors import BackendError
    from eagle.backends.hf import HFBackend
    from eagle.backends.openai_server import VLLMServerBackend
    from eagle.backends.serving import ManagedServer, ServerStartError, VLLMEnvironmentMissing
    from probe.agreement import bench_backends, bench_cases

    torch.set_num_threads(threads)
    try:
        inprocess = HFBackend(model=checkpoint, model_id="probe")
    except (FileNotFoundError, OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    with contextlib.ExitStack() as stack:
        if endpoint is None:
            from probe.model import CHECKPOINT_DIR

            server = ManagedServer(model=checkpoint or CHECKPOINT_DIR, served_model_name="probe")
            try:
                stack.enter_context(server)
            except (VLLMEnvironmentMissing, ServerStartError) as exc:
                raise click.ClickException(str(exc)) from exc
            endpoint, model = server.url, "probe"
        def server_backend(n: int) -> VLLMServerBackend:
            kw = backend_keywords("vllm-server", concurrency=n, timeout=timeout, deadline=deadline)
            return stack.enter_context(VLLMServerBackend(model=model, endpoint=endpoint, **kw))

        conc, seq = server_backend(concurrency), server_backend(1)
        try:
            cases = bench_cases(inprocess, n_images=n_images, per_case=per_call)
            result = bench_backends(conc, seq, inprocess, cases, repeats=repeats, callers=callers)
            info = conc.info()
        except BackendError as exc:
            raise click.ClickException(str(exc)) from exc
    result.update(
        concurrency=concurrency,
        per_call=per_call,
        endpoint=endpoint,
        engine_version=info.get("engine_version"),
        torch_threads=threads,
        machine=f"{platform.machine()} {os.cpu_count()} CPUs",
    )
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(
        f"server x{concurrency}, {callers} callers: {result['server_concurrent_per_s']:.1f} img/s "
        f"(one caller: {result['server_concurrent_one_caller_per_s']:.1f}), server x1: "
        f"{result['server_sequential_per_s']:.1f} img/s ({result['concurrency_speedup']:.2f}x), in-process: "
        f"{result['inprocess_per_s']:.1f} img/s; agreement {result['prob_agreement']:.3f} "
        f"(max |diff| {result['max_abs_diff']:.2e})"
    )
