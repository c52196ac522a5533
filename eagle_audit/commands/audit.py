"""`eagle-audit audit`: the main job. Parses options into an `audit.AuditConfig`, checks every input
before anything starts, then runs the Prefect flow (against a temporary local Prefect API when
PREFECT_API_URL is not set) or, with `--no-prefect`, the engine directly."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click

from eagle.search import DEFAULT_SEARCH, SEARCH_NAMES
from eagle_audit.commands.backend_options import backend_keywords, backend_options

log = logging.getLogger("audit")


class UsageFailure(click.ClickException):
    """A wrong option or input: one `Error:` line, exit code 2."""

    exit_code = 2


@click.command()
@click.option(
    "--benchmark", default="pope", show_default=True,
    help="What to ask: pope (yes/no questions, POPE/RePOPE labels), captions (CHAIR), "
    "or another registered plug-in.",
)  # fmt: skip
@click.option("--dataset", type=click.Choice(["probe", "repope"]), default="probe", show_default=True)
@click.option(
    "--annotations",
    type=click.Path(path_type=Path),
    help="POPE/RePOPE annotation directory (--dataset repope).",
)
@click.option(
    "--images", type=click.Path(path_type=Path), help="Image directory, e.g. COCO val2014 (--dataset repope)."
)
@click.option(
    "--instances", type=click.Path(path_type=Path),
    help="COCO instances_val2014.json: exhaustive object ground truth and masks (--dataset repope).",
)  # fmt: skip
@click.option(
    "--splits", default="random,popular,adversarial", show_default=True, help="Comma-separated POPE splits."
)
@click.option(
    "--limit", type=int, default=None,
    help="Ask a random sample of N questions, stratified per split and label (seed: --sample-seed); "
    "a pair shared by several chosen questions is asked once.",
)  # fmt: skip
@click.option(
    "--sample-seed", type=int, default=0, show_default=True, help="Seed of the --limit sample (recorded)."
)
@backend_options
@click.option(
    "--explain", default="all", show_default=True, help="Hallucinations to explain: all, none, or a number."
)
@click.option(
    "--regions", type=int, default=64, show_default=True, help="EAGLE division number (superpixels)."
)
@click.option("--search", type=click.Choice(SEARCH_NAMES), default=DEFAULT_SEARCH, show_default=True)
@click.option("--store", type=click.Path(path_type=Path), default=Path("store"), show_default=True)
@click.option("--run-id", default=None, help="Resume (or name) this run.")
@click.option("--seed", type=int, default=0, show_default=True, help="Probe world seed.")
@click.option(
    "--probe-images", type=int, default=40, show_default=True, help="Scenes in the built-in probe world."
)
@click.option(
    "--max-new-tokens", type=int, default=None,
    help="Answer length in tokens (default: the benchmark's; pope 8, captions 64).",
)  # fmt: skip
@click.option(
    "--explain-concurrency", type=int, default=1, show_default=True, help="Explanations in flight at once."
)
@click.option(
    "--max-failed-share", type=float, default=0.05, show_default=True,
    help="The run ends failed (exit 1) when a larger share of samples (or explanations) failed.",
)  # fmt: skip
@click.option(
    "--task-runner", default="threads", show_default=True,
    help="threads, or dask[=ADDRESS] to spread explanations over a Dask cluster "
    "(pip install 'eagle-audit[dask]').",
)  # fmt: skip
@click.option("--no-prefect", is_flag=True, help="Run the audit engine directly, without Prefect.")
@click.option("--no-report", is_flag=True, help="Do not write the HTML report.")
@click.option(
    "--gate", "gate_policy", type=click.Path(path_type=Path, dir_okay=False), default=None,
    help="After the audit, judge the run with this release-gate policy (see gate.toml); "
    "exit 1 on a regression.",
)  # fmt: skip
@click.option("--gate-baseline", default=None, help="Baseline of --gate (default: the policy's).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("-v", "--verbose", count=True, help="-v: library logs (Prefect, HTTP); -vv: debug.")
def audit(
    benchmark, dataset, annotations, images, instances, splits, limit, sample_seed, backend, model, endpoint,
    concurrency, timeout, deadline, dtype, explain, regions, search, store, run_id, seed, probe_images,
    max_new_tokens, explain_concurrency, max_failed_share, task_runner, no_prefect, no_report, gate_policy,
    gate_baseline, as_json, verbose,
) -> None:  # fmt: skip
    """Audit a model: ask a benchmark's questions (POPE/RePOPE yes/no, or captions), mark
    hallucinated tokens, explain them with EAGLE, and write everything to a Parquet store. With no
    options: POPE on the probe world with the probe model."""
    from audit.config import AuditConfig, ConfigError, check_inputs

    _configure_logging(verbose)
    try:
        config = AuditConfig(
            store=store.resolve(),
            benchmark=benchmark,
            dataset=dataset,
            annotations=annotations.resolve() if annotations else None,
            images=images.resolve() if images else None,
            instances=instances.resolve() if instances else None,
            splits=tuple(s.strip() for s in splits.split(",") if s.strip()),
            limit=limit,
            sample_seed=sample_seed,
            backend=backend,
            model=model,
            endpoint=tuple(e.strip() for e in (endpoint or "").split(",") if e.strip()),
            backend_options=backend_keywords(
                backend, concurrency=concurrency, timeout=timeout, deadline=deadline, dtype=dtype
            ),
            explain=explain,
            regions=regions,
            search=search,
            seed=seed,
            probe_images=probe_images,
            max_new_tokens=max_new_tokens,
            run_id=run_id,
            explain_concurrency=explain_concurrency,
            max_failed_share=max_failed_share,
            report=not no_report,
        )
        check_inputs(config)
        gate = None
        if gate_policy is not None:
            from audit.gate import load_policy

            gate = load_policy(gate_policy)  # a bad policy fails now, not after the audit
        if not no_prefect:
            from flows.runners import check_task_runner

            check_task_runner(task_runner)  # a bad --task-runner fails now, not after the server started
    except (ConfigError, ValueError) as exc:
        raise UsageFailure(str(exc)) from exc
    _stop_on_sigterm()
    gate_params = {"gate": str(gate_policy.resolve()), "gate_baseline": gate_baseline} if gate else {}
    if no_prefect:
        result = _run_engine(config)
        if gate is not None and result["status"] == "complete":
            result["gate"] = _run_gate(config, gate, result["run_id"], gate_baseline)
    else:
        result = _run_flow(config, task_runner, verbose, gate_params)
    _print(result, as_json)
    if result["status"] != "complete":
        raise click.ClickException(f"run {result['run_id']} failed: {result['error']}")
    if result.get("gate", {}).get("verdict") == "fail":
        raise click.ClickException(f"run {result['run_id']} failed the release gate {gate_policy}")


def _run_gate(config: Any, policy: Any, run_id: str, baseline: str | None) -> dict[str, Any]:
    from audit.gate import run_gate

    try:
        return run_gate(config.store, policy, run_id, baseline=baseline).to_dict()
    except Exception as exc:
        raise _as_click_error(exc) from exc


def _run_engine(config: Any) -> dict[str, Any]:
    from audit import AuditFailed, run_audit

    try:
        return run_audit(config).to_dict()
    except AuditFailed as exc:
        return exc.result.to_dict()
    except Exception as exc:
        raise _as_click_error(exc) from exc


def _run_flow(config: Any, task_runner: str, verbose: int, extra: dict[str, Any]) -> dict[str, Any]:
    """The flow against PREFECT_API_URL, or a temporary server beside the store that dies with this
    process. The model loads while the server starts. `extra`: flow parameters beyond the config."""
    from audit import AuditFailed
    from audit.backend import backend_for
    from audit.gate import GateFailed
    from flows.server import TemporaryPrefectServer

    os.environ.setdefault("PREFECT_HOME", str(config.store / ".prefect"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO" if verbose else "CRITICAL")
    server = None
    if not os.environ.get("PREFECT_API_URL"):
        server = TemporaryPrefectServer(Path(os.environ["PREFECT_HOME"])).start()
    warm: list[BaseException] = []
    loader = threading.Thread(target=_warm_backend, args=(backend_for, config, warm), daemon=True)
    loader.start()
    try:
        if server is not None:
            log.info("starting a temporary Prefect server (set PREFECT_API_URL to use yours)")
            server.wait_healthy()
            os.environ["PREFECT_API_URL"] = server.api_url
        loader.join()
        if warm:
            raise warm[0]
        from prefect.settings import PREFECT_API_URL, temporary_settings

        from flows.audit_flow import audit_flow
        from flows.runners import task_runner_for

        flow = audit_flow.with_options(
            task_runner=task_runner_for(task_runner, workers=config.explain_concurrency)
        )
        try:
            with temporary_settings({PREFECT_API_URL: os.environ["PREFECT_API_URL"]}):
                return flow(**_flow_parameters(config), **extra)
        except AuditFailed as exc:
            return exc.result.to_dict()
        except GateFailed as exc:
            return exc.summary
    except click.ClickException:
        raise
    except Exception as exc:
        raise _as_click_error(exc) from exc
    finally:
        if server is not None:
            server.stop()


def _warm_backend(build: Any, config: Any, errors: list[BaseException]) -> None:
    try:
        build(config)
    except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
        errors.append(exc)


def _flow_parameters(config: Any) -> dict[str, Any]:
    """The flow's parameters from a config (the flow rebuilds the same AuditConfig)."""
    params = config.to_json()
    for name in ("correction", "batch_size"):
        params.pop(name)
    params["endpoint"] = list(config.endpoint)
    params["splits"] = list(config.splits)
    return params


def _as_click_error(exc: Exception) -> click.ClickException:
    from auditors.annotations import AnnotationError
    from auditors.benchmarks.base import SourceError

    if isinstance(exc, SourceError | AnnotationError):  # ConfigError is a SourceError
        return UsageFailure(str(exc))
    return click.ClickException(f"{type(exc).__name__}: {exc}")


def _stop_on_sigterm() -> None:
    """SIGTERM ends the run like Ctrl-C: the run is marked failed and the Prefect server stopped."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


def _configure_logging(verbose: int) -> None:
    """Progress of the run on stderr; library chatter only with -v."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING)
    for name in ("audit", "eagle_audit"):
        logging.getLogger(name).setLevel(logging.DEBUG if verbose > 1 else logging.INFO)
    if not verbose:
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # transformers' weight-loading bar
        for noisy in ("httpx", "httpcore", "prefect", "distributed", "asyncio"):
            logging.getLogger(noisy).setLevel(logging.CRITICAL)


def _print(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(summary, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 120)  # a log keeps the whole table
    table = Table(
        title=f"run {summary['run_id']} ({summary['benchmark']}, {summary['status']}): "
        f"{summary['questions']} items, {summary['failed_samples']} failed, "
        f"{summary['marks']} marked tokens, {summary['explained']} explanations"
    )
    columns = [k for k in (summary["metrics"][0] if summary["metrics"] else {}) if k != "label_set"]
    for col in ["labels", *columns]:
        table.add_column(HEADERS.get(col, col.replace("_", " ")), justify="right")
    for r in summary["metrics"]:
        table.add_row(r["label_set"], *(_fmt(r[k], k) for k in columns))
    console.print(table)
    console.print(f"store:  {summary['store']}")
    if summary.get("report"):
        console.print(f"report: {summary['report']}")
    if summary.get("gate"):
        console.print(summary["gate"]["explanation"], markup=False, highlight=False)
    console.print(
        f"query:  eagle-audit query --store {summary['store']} "
        f"\"SELECT * FROM metrics WHERE run_id = '{summary['run_id']}'\""
    )


COUNTS = frozenset({"n", "unparsed", "mentions", "hallucinated", "unverified", "captions", "present"})


HEADERS = {"fp": "FP", "tn": "TN", "hallucination_rate": "halluc. rate"}  # summary column titles


def _fmt(x: Any, key: str = "") -> str:
    """A metric for the summary table: counts as integers, rates with three decimals."""
    if x is None:
        return "-"
    if key in COUNTS or isinstance(x, int):
        return str(int(x))
    return f"{x:.3f}" if isinstance(x, float) else str(x)
