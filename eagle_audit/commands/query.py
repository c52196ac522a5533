"""`eagle-audit query`: SQL over an audit store, on a read-only DuckDB connection."""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import json
import sys
from pathlib import Path
from typing import Any

import click


def _plain(value: Any) -> Any:
    """A JSON-able form of a DuckDB value (dates as ISO text, decimals as floats, maps as objects)."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list | tuple):
        return json.dumps(_plain(value), ensure_ascii=False)
    return str(_plain(value))


def _parse_params(pairs: tuple[str, ...]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(
                f"{pair!r} is not NAME=VALUE (e.g. --param model=llava)", param_hint="--param"
            )
        try:  # numbers, null, true/false and quoted strings as JSON; anything else is text
            params[name] = json.loads(text)
        except json.JSONDecodeError:
            params[name] = text
    return params


def emit(table, fmt: str) -> None:  # table: pyarrow.Table
    """Print an Arrow table as a rich table, CSV or a JSON array of objects."""
    rows = table.to_pylist(maps_as_pydicts="lossy")
    if fmt == "json":
        click.echo(json.dumps([_plain(r) for r in rows], ensure_ascii=False, indent=2))
    elif fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(table.column_names)
        writer.writerows([_cell(v) for v in r.values()] for r in rows)
        sys.stdout.flush()
    else:
        from rich.console import Console
        from rich.table import Table

        out = Table(show_lines=False)
        for name in table.column_names:
            out.add_column(name, overflow="fold")
        for r in rows:
            # rich markup in model output must print literally
            out.add_row(*[_cell(v).replace("[", "\\[") for v in r.values()])
        console = Console(file=sys.stdout, width=max(80, min(240, 16 * len(table.column_names))))
        console.print(out)
        console.print(f"{table.num_rows} row{'s' if table.num_rows != 1 else ''}")


@click.command()
@click.argument("sql", required=False)
@click.option("--store", "store_dir", type=click.Path(path_type=Path), help="Store directory (required).")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True
)
@click.option("--example", help="Run a documented example query by name instead of SQL.")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="Bind $NAME (repeatable).")
@click.option("--list-examples", is_flag=True, help="List the example queries and their parameters.")
def query(
    sql: str | None,
    store_dir: Path | None,
    fmt: str,
    example: str | None,
    params: tuple[str, ...],
    list_examples: bool,
) -> None:
    """Run SQL on the store's views (runs, answers, answer_labels, marks, explanations, causes, metrics,
    run_events).

    The connection is read-only: only SELECT (and EXPLAIN) statements run. Values are bound with
    --param, never pasted into the SQL, e.g.

        eagle-audit query --store results "SELECT * FROM runs WHERE model_id = $m" --param m=llava
    """
    from storage.queries import EXAMPLES, get_example
    from storage.sql import ReadOnlyQueryError
    from storage.store import Store, StoreNotFoundError

    if list_examples:
        for q in EXAMPLES.values():
            defaults = ", ".join(f"{k}={json.dumps(v)}" for k, v in q.params.items()) or "no parameters"
            click.echo(f"{q.name}: {q.description} ({defaults})")
        return
    if store_dir is None:
        raise click.UsageError("Missing option '--store': give the store directory an audit wrote to")
    if (sql is None) == (example is None):
        raise click.UsageError("give either SQL or --example NAME (see --list-examples)")
    bound = _parse_params(params)
    if example is not None:
        try:
            named = get_example(example)
            bound = named.bind(**bound)
        except (KeyError, ValueError) as exc:
            raise click.ClickException(exc.args[0]) from exc
        sql = named.sql
    try:
        store = Store(store_dir, create=False)
    except (StoreNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    import duckdb

    try:
        result = store.query(sql, bound or None)
    except ReadOnlyQueryError as exc:
        raise click.ClickException(str(exc)) from exc
    except (duckdb.Error, ValueError) as exc:
        raise click.ClickException(f"query failed: {exc}") from exc
    emit(result, fmt)
