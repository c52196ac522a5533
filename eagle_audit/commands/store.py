"""`eagle-audit store`: look after an audit store (info, compact)."""

from __future__ import annotations

from pathlib import Path

import click


def _open(store_dir: Path):
    from storage.store import Store, StoreNotFoundError

    try:
        return Store(store_dir, create=False)
    except (StoreNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc


@click.group()
def store() -> None:
    """Inspect and maintain a result store (a directory of Parquet files)."""


@store.command()
@click.option("--store", "store_dir", required=True, type=click.Path(path_type=Path), help="Store directory.")
def info(store_dir: Path) -> None:
    """Tables (files, rows, size), runs with their status, and leftover temporary files."""
    from rich.console import Console
    from rich.table import Table

    summary = _open(store_dir).info()
    console = Console(width=120)
    tables = Table(title=f"store {summary.root}")
    for name in ("table", "files", "rows", "MiB", "replaced (awaiting deletion)"):
        tables.add_column(name, justify="left" if name == "table" else "right")
    for t in summary.tables:
        tables.add_row(t.table, str(t.files), str(t.rows), f"{t.bytes / 2**20:.2f}", str(t.replaced_files))
    console.print(tables)
    runs = Table(title=f"{len(summary.runs)} runs")
    for name in ("run_id", "model_id", "started_at", "status", "answers"):
        runs.add_column(name)
    for r in summary.runs:
        runs.add_row(
            r["run_id"],
            r["model_id"].replace("[", "\\["),
            r["started_at"].isoformat(timespec="seconds"),
            r["status"],
            str(r["answers"]),
        )
    console.print(runs)
    if summary.tmp_files:
        console.print(f"{summary.tmp_files} temporary files (from writes in progress or crashed writers)")


@store.command()
@click.option("--store", "store_dir", required=True, type=click.Path(path_type=Path), help="Store directory.")
@click.option("--model", default=None, help="Only this model (raw id or directory name).")
@click.option(
    "--grace",
    "grace_s",
    type=float,
    default=60.0,
    show_default=True,
    help="Seconds a replaced file is kept for queries already running.",
)
@click.option(
    "--tmp-age",
    "tmp_age_s",
    type=float,
    default=3600.0,
    show_default=True,
    help="Remove temporary files of crashed writers older than this many seconds.",
)
def compact(store_dir: Path, model: str | None, grace_s: float, tmp_age_s: float) -> None:
    """Merge the small part files of complete runs into one file per partition."""
    from storage.store import StoreBusyError

    try:
        result = _open(store_dir).compact(model, grace_s=grace_s, tmp_age_s=tmp_age_s)
    except StoreBusyError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"merged {result.parts_merged} files into {result.files_written} ({result.rows} rows); "
        f"deleted {result.files_deleted} replaced files; removed {result.tmp_removed} temporary files"
    )
