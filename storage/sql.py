"""SQL text helpers: the one place identifiers and literals are quoted, and the check that keeps
ad-hoc SQL read-only.

Values that come from data (model output, sample ids, user input) are never put into SQL text:
they are bound as `?` / `$name` parameters. Only trusted names from `storage.schemas` and the store
path (quoted here) appear in generated SQL.
"""

from __future__ import annotations

import duckdb

# Statement types an analyst's query may contain: SELECT (also FROM-first, VALUES, DESCRIBE,
# SUMMARIZE, SHOW, which DuckDB parses as SELECT) and EXPLAIN [ANALYZE] of a SELECT. Everything else
# (COPY, CREATE, INSERT, ATTACH, EXPORT, SET, LOAD, PRAGMA, CALL, PIVOT's multi-statement ...) is
# refused before DuckDB runs it.
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
    """Split `sql` into statements and refuse any that is not a SELECT, or an EXPLAIN (ANALYZE) of one.

    Classification is DuckDB's own parser's (statement types), also for the statement inside an
    EXPLAIN: `EXPLAIN ANALYZE` runs its statement, so `EXPLAIN ANALYZE COPY ...` writes. Returns the
    statements' text. Raises ReadOnlyQueryError naming the first offending statement, or ValueError
    (chained from DuckDB's parser error) when the SQL does not parse.
    """
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise ValueError(f"could not parse the query: {exc}") from exc
    if not statements:
        raise ValueError('the query is empty; pass a SELECT statement, e.g. "SELECT * FROM runs"')
    for statement in statements:
        kind = statement.type
        if kind == duckdb.StatementType.EXPLAIN:
            kind = _explained_type(statement.query)
        if kind != duckdb.StatementType.SELECT:
            if statement.type != duckdb.StatementType.EXPLAIN:
                what = kind.name
            else:
                what = "EXPLAIN " + (kind.name if kind is not None else "(of anything but one SELECT)")
            raise ReadOnlyQueryError(
                f"{what} statements are not allowed: queries on the store are read-only "
                f"(offending statement: {statement.query.strip()[:80]!r}); use SELECT"
            )
    return [statement.query for statement in statements]


def _explained_type(explain: str) -> duckdb.StatementType | None:
    """The type of the statement an EXPLAIN wraps, as DuckDB's parser reads it; None when it is not
    exactly one statement or readings disagree (refused: fail closed).

    `EXPLAIN [ANALYZE] [(options)] stmt`: the parenthesis may be options or the statement itself
    (`EXPLAIN (SELECT 1)`), so both readings are parsed and every one that parses must agree.
    """
    every = duckdb.tokenize(explain)
    ends = [start for start, _ in every[1:]] + [len(explain)]
    tokens = [
        (start, kind, explain[start:end].strip())
        for (start, kind), end in zip(every, ends, strict=True)
        if kind != duckdb.token_type.comment
    ]
    words = [word for _, _, word in tokens]
    operators = [kind == duckdb.token_type.operator for _, kind, _ in tokens]
    i = 1  # past EXPLAIN
    if i < len(words) and words[i].upper() in ("ANALYZE", "ANALYSE"):
        i += 1
    starts = [i]
    if i < len(words) and words[i].startswith("(") and operators[i]:
        depth = 0
        for j in range(i, len(words)):
            if operators[j]:
                depth += words[j].count("(") - words[j].count(")")
            if depth == 0:
                starts.append(j + 1)
                break
    found: set[duckdb.StatementType] = set()
    for k in starts:
        if k >= len(tokens):
            continue
        try:
            inner = duckdb.extract_statements(explain[tokens[k][0] :])
        except duckdb.Error:
            continue
        if len(inner) != 1:
            return None
        kind = inner[0].type
        found.add(_explained_type(inner[0].query) if kind == duckdb.StatementType.EXPLAIN else kind)
    return found.pop() if len(found) == 1 else None
