"""`eagle-audit report`: write the self-contained HTML audit report of one run of a store."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option(
    "--store",
    "store",
    type=click.Path(path_type=Path),
    required=True,
    help="Store directory the audit wrote (read only).",
)
@click.option("--run", "run_id", default=None, help="Run id to report (default: the latest run).")
@click.option("--latest", is_flag=True, help="Report the latest run (of --model when given); the default.")
@click.option("--model", default=None, help="Model id as recorded in the runs table; picks its latest run.")
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="HTML file to write, e.g. audit.html.",
)
@click.option(
    "--images",
    "image_root",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Directory the answers' image names are relative to (default: the run's config image_root).",
)
@click.option(
    "--max-cards",
    type=click.IntRange(min=0),
    default=None,
    help="Show at most this many hallucination cards (default: all explained ones).",
)
def report(
    store: Path,
    run_id: str | None,
    latest: bool,
    model: str | None,
    out: Path,
    image_root: Path | None,
    max_cards: int | None,
) -> None:
    """Build one HTML file (images embedded, no network fetches) for a run: POPE vs RePOPE summary,
    trends over the model's runs, per-class false positives, and a card per explained hallucination."""
    if run_id is not None and latest:
        raise click.UsageError("pass either --run RUN_ID or --latest, not both")
    from reports import ReportError, build_report

    try:
        path = build_report(
            store,
            run_id=run_id,
            model=model,
            out=out,
            image_root=image_root,
            max_cards=max_cards,
            progress=True,
        )
    except ReportError as exc:
        raise click.ClickException(str(exc)) from exc
    size_mb = path.stat().st_size / 1e6
    click.echo(f"wrote {path} ({size_mb:.1f} MB)")
