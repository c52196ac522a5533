"""`eagle-audit audit`: run the Prefect audit flow (the main job)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import click

SPLIT_CHOICES = ("random", "popular", "adversarial")


@click.command()
@click.option("--dataset", type=click.Choice(["probe", "repope"]), default="probe", show_default=True)
@click.option(
    "--annotations",
    type=click.Path(file_okay=False, path_type=Path),
    help="POPE/RePOPE annotation directory (--dataset repope).",
)
@click.option(
    "--images",
    type=click.Path(file_okay=False, path_type=Path),
    help="Image directory, e.g. COCO val2014 (--dataset repope).",
)
@click.option(
    "--splits", default="random,popular,adversarial", show_default=True, help="Comma-separated POPE splits."
)
@click.option("--limit", type=int, default=None, help="Ask at most N unique questions.")
@click.option(
    "--backend", type=click.Choice(["hf", "vllm-server", "vllm-engine"]), default="hf", show_default=True
)
@click.option(
    "--model",
    default=None,
    help="Model directory (hf, vllm-engine) or served model name (vllm-server). Default: the probe model.",
)
@click.option("--endpoint", default=None, help="vLLM server URL(s), comma-separated replicas.")
@click.option(
    "--explain", default="all", show_default=True, help="Hallucinations to explain: all, none, or a number."
)
@click.option(
    "--regions", type=int, default=64, show_default=True, help="EAGLE division number (superpixels)."
)
@click.option("--search", type=click.Choice(["efficient", "exact"]), default="efficient", show_default=True)
@click.option(
    "--store", type=click.Path(file_okay=False, path_type=Path), default=Path("store"), show_default=True
)
@click.option("--run-id", default=None, help="Resume (or name) this run.")
@click.option("--seed", type=int, default=0, show_default=True, help="Probe world seed.")
@click.option(
    "--probe-images", type=int, default=40, show_default=True, help="Scenes in the built-in probe world."
)
@click.option(
    "--explain-concurrency",
    type=int,
    default=1,
    show_default=True,
    help="Explanations in flight per model endpoint.",
)
@click.option(
    "--task-runner",
    default="threads",
    show_default=True,
    help="threads, or dask[=ADDRESS] to spread explanations over a Dask cluster.",
)
@click.option("--no-report", is_flag=True, help="Do not write the HTML report.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def audit(
    dataset,
    annotations,
    images,
    splits,
    limit,
    backend,
    model,
    endpoint,
    explain,
    regions,
    search,
    store,
    run_id,
    seed,
    probe_images,
    explain_concurrency,
    task_runner,
    no_report,
    as_json,
) -> None:
    """Audit a model: ask POPE/RePOPE questions, mark hallucinated tokens, explain them with EAGLE,
    and write everything to a Parquet store. With no options: the probe world and the probe model."""
    split_list = [s.strip() for s in splits.split(",") if s.strip()]
    bad = [s for s in split_list if s not in SPLIT_CHOICES]
    if bad:
        raise click.ClickException(
            f"unknown split(s) {', '.join(bad)} in --splits; choose from {', '.join(SPLIT_CHOICES)}"
        )
    if dataset == "repope" and (annotations is None or images is None):
        raise click.ClickException("--dataset repope needs --annotations DIR and --images DIR")
    if backend == "vllm-server" and not endpoint:
        raise click.ClickException("--backend vllm-server needs --endpoint URL (e.g. http://127.0.0.1:8000)")
    store = store.resolve()
    store.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PREFECT_HOME", str(store / ".prefect"))
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # A busy 2-core machine needs more than the default 20 s to start the temporary API.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    # Cached explanation results (small pointers into the store) live beside the store they point into.
    os.environ.setdefault("PREFECT_RESULTS_LOCAL_STORAGE_PATH", str(store / ".prefect" / "results"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from auditors.annotations import AnnotationError
    from flows.audit import audit_flow
    from flows.runners import task_runner_for

    flow = audit_flow.with_options(task_runner=task_runner_for(task_runner))
    try:
        summary = flow(
            store=str(store),
            dataset=dataset,
            annotations=str(annotations) if annotations else None,
            images=str(images) if images else None,
            splits=split_list,
            limit=limit,
            backend=backend,
            model=model,
            endpoint=[e for e in (endpoint or "").split(",") if e],
            explain=explain,
            regions=regions,
            search=search,
            seed=seed,
            probe_images=probe_images,
            run_id=run_id,
            explain_concurrency=explain_concurrency,
            report=not no_report,
        )
    except (AnnotationError, ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(summary, default=str))
        return
    _print_summary(summary)


def _print_summary(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(
        title=f"run {summary['run_id']}: {summary['questions']} questions, "
        f"{summary['marks']} marked tokens, {summary['explained']} explanations"
    )
    for col in ("labels", "split", "n", "precision", "recall", "f1", "accuracy", "yes ratio", "unparsed"):
        table.add_column(col, justify="right")
    for r in summary["metrics"]:
        table.add_row(
            r["label_set"],
            r["split"],
            str(r["n"]),
            *(_fmt(r[k]) for k in ("precision", "recall", "f1", "accuracy", "yes_ratio")),
            str(r["unparsed"]),
        )
    console.print(table)
    console.print(f"store:  {summary['store']}")
    if summary.get("report"):
        console.print(f"report: {summary['report']}")
    console.print(
        f"query:  eagle-audit query --store {summary['store']} "
        f"\"SELECT * FROM metrics WHERE run_id = '{summary['run_id']}'\""
    )


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.3f}"
