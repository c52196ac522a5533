"""Ad-hoc SQL cannot change the store; values are bound, identifiers quoted in one helper."""

from __future__ import annotations

import os

import duckdb
import pytest
from storage_fixtures import MODEL_A, answer, record

from storage.sql import ReadOnlyQueryError, check_read_only, quote_identifier, quote_literal
from storage.store import Store


def tree(root) -> list[tuple[str, int, int]]:
    return sorted(
        (str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file()
    )


def test_quoting():
    assert quote_identifier("answers") == '"answers"'
    assert quote_identifier('a"; DROP TABLE x; --') == '"a""; DROP TABLE x; --"'
    assert quote_literal("it's") == "'it''s'"
    with pytest.raises(ValueError, match="NUL"):
        quote_identifier("a\x00b")


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("COPY (SELECT 1) TO '{root}/answers/model=x/run_date=2025-01-01/part-evil-{uid}.parquet'", "COPY"),
        ("COPY answers TO '/tmp/stolen.csv'", "COPY"),
        ("CREATE TABLE t AS SELECT * FROM answers", "CREATE"),
        ("CREATE VIEW runs2 AS SELECT 1", "CREATE"),
        ("INSERT INTO answers SELECT * FROM answers", "INSERT"),
        ("ATTACH '{root}/evil.db' AS evil", "ATTACH"),
        ("EXPORT DATABASE '{root}/export'", "EXPORT"),
        ("SET enable_external_access = true", "SET"),
        ("INSTALL httpfs", "LOAD"),
        ("LOAD sqlite_scanner", "LOAD"),
        ("PRAGMA show_tables", "PRAGMA"),
        ("DELETE FROM answers", "DELETE"),
        ("SELECT 1; COPY (SELECT 1) TO '{root}/x.csv'", "COPY"),
    ],
)
def test_user_sql_cannot_write(synthetic_store, sql, kind):
    store = Store(synthetic_store)
    before = tree(synthetic_store)
    with pytest.raises(
        ReadOnlyQueryError, match=f"^{kind} statements are not allowed: queries on the store are read-only"
    ):
        store.query(sql.format(root=synthetic_store, uid="0" * 32))
    assert tree(synthetic_store) == before
    assert not os.path.exists("/tmp/stolen.csv")


def test_read_only_connection_cannot_touch_files_even_without_the_statement_check(synthetic_store, tmp_path):
    con = Store(synthetic_store).connect(read_only=True)
    outside = tmp_path / "out.csv"
    with pytest.raises(duckdb.PermissionException):
        con.execute(f"COPY (SELECT 1) TO {quote_literal(str(outside))}")
    with pytest.raises(duckdb.Error):
        con.execute(f"ATTACH {quote_literal(str(tmp_path / 'x.db'))}")
    with pytest.raises(duckdb.Error, match="locked"):
        con.execute("SET enable_external_access = true")
    with pytest.raises(duckdb.PermissionException):
        con.execute("SELECT * FROM read_csv('/etc/passwd')")
    secret = tmp_path / "secret.csv"
    secret.write_text("a,b\n1,2\n")
    sneaky = f"{synthetic_store}/../../{tmp_path.name}/secret.csv"  # through the store, then out
    with pytest.raises(duckdb.PermissionException):
        con.execute(f"SELECT * FROM read_csv({quote_literal(sneaky)})")
    assert not outside.exists() and not (tmp_path / "x.db").exists()
    assert con.execute("SELECT count(*) FROM answers").fetchone() == (12,)  # views still read the store


def test_model_output_is_bound_never_spliced(tmp_path):
    store = Store(tmp_path / "s")
    run_id = store.begin_run(record(MODEL_A, 1, "r1"))
    evil = "Yes'); DROP VIEW answers; COPY answers TO '/tmp/x.csv'; --"
    store.write("answers", [{**answer("s1", "star", "yes", "no", "no", "i"), "answer_text": evil}], run_id)
    got = store.query("SELECT sample_id FROM answers WHERE answer_text = $t", {"t": evil})
    assert got.column(0).to_pylist() == ["s1"]
    assert store.query("SELECT count(*) FROM answers").column(0)[0].as_py() == 1


def test_parse_errors_and_empty_queries():
    with pytest.raises(ValueError, match="could not parse the query"):
        check_read_only("SELEC 1")
    with pytest.raises(ValueError, match="the query is empty"):
        check_read_only("  ;  ")
    assert check_read_only("EXPLAIN SELECT 1") and check_read_only("WITH a AS (SELECT 1) SELECT * FROM a")
