"""SQL text helpers: the one place identifiers and literals are quoted, and the check that keeps
ad-hoc SQL read-only.

Values that come from data (model output, sample ids, user input) are never put into SQL text:
they are bound as `?` / `$name` parameters. Only trusted names from `storage.schemas` and the store
path (quoted here) appear in generated SQL.
"""

from __future__ import annotations

import duckdb

# Statement types an analyst's query may contain. Everything else (COPY, CREATE, INSERT, ATTACH,
# EXPORT, SET, LOAD, PRAGMA, CALL ...) is refused before DuckDB runs it.
READ_ONLY_STATEMENTS = frozenset({duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN})


class ReadOnlyQueryError(ValueError):
    """A query contains a statement that could change state (COPY, CREATE, INSERT, ATTACH, ...)."""


def quote_identifier(name: str) -> str:
    """`name` as a DuckDB identifier: wrapped in double quotes, embedded quotes doubled.

    >>> quote_identifier('run"id')
    '"run""id"'
    """
    if "\x00" in name:
        raise ValueError(f"identifier {name!r} contains a NUL character; use a plain name")
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """`value` as a SQL string literal (single quotes doubled). Only for trusted text such as the
    store path in a view definition; data values are bound as parameters instead."""
    if "\x00" in value:
        raise ValueError(f"string {value!r} contains a NUL character and cannot be a SQL literal")
    return "'" + value.replace("'", "''") + "'"


def check_read_only(sql: str) -> list[str]:
    """Split `sql` into statements and refuse any that is not a SELECT (or EXPLAIN of one).

    Returns the statements' text. Raises ReadOnlyQueryError naming the first offending statement,
    or ValueError (chained from DuckDB's parser error) when the SQL does not parse.
    """
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise ValueError(f"could not parse the query: {exc}") from exc
    if not statements:
        raise ValueError('the query is empty; pass a SELECT statement, e.g. "SELECT * FROM runs"')
    for statement in statements:
        if statement.type not in READ_ONLY_STATEMENTS:
            kind = statement.type.name
            raise ReadOnlyQueryError(
                f"{kind} statements are not allowed: queries on the store are read-only "
                f"(offending statement: {statement.query.strip()[:80]!r}); use SELECT"
            )
    return [statement.query for statement in statements]
