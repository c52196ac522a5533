"""Ad-hoc SQL cannot change the store or touch files outside it, on every surface: the CLI
(`eagle-audit query`), `Store.query` and `Store.connect()`; values are bound, identifiers quoted in
one helper."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from storage_fixtures import MODEL_A, answer, record

from eagle_audit.cli import main
from storage.readonly_fs import PositionalReader
from storage.sql import ReadOnlyQueryError, check_read_only, quote_identifier, quote_literal
from storage.store import Store

UID = "0" * 32
FORGE = "SELECT * REPLACE ('FORGED' AS model_id, 'evil' AS run_id) FROM run_records"
NEW_PART = "{root}/runs/model=m/run_date=2025-01-01/part-evil-" + UID + ".parquet"

# (statement, kind). Every statement parses; the CLI and Store.query refuse all of them.
# write: would write, truncate or remove a file      -> Store.connect() refuses it too
# read:  reads outside the store (or hidden files)   -> Store.connect() refuses it too
# state: changes only the connection's own memory or settings -> Store.connect() may run it,
#        but nothing on disk changes
HOSTILE = [
    # the reproduced bypasses: EXPLAIN ANALYZE runs its statement
    (f"EXPLAIN ANALYZE COPY ({FORGE}) TO '{NEW_PART}' (FORMAT parquet)", "write"),
    ("EXPLAIN ANALYZE COPY (SELECT * FROM run_records WHERE false) TO '{part}' (FORMAT parquet)", "write"),
    ("EXPLAIN ANALYZE COPY (SELECT 1 AS a) TO '.tmp/evil.csv'", "write"),
    ("EXPLAIN ANALYZE SELECT * FROM read_csv('.tmp/planted.csv')", "read"),
    ("COPY run_records TO '{part}' (FORMAT parquet)", "write"),
    # EXPLAIN spelled every way
    (f"EXPLAIN (ANALYZE) COPY ({FORGE}) TO '{NEW_PART}' (FORMAT parquet)", "write"),
    ("EXPLAIN (FORMAT json) COPY (SELECT 1 AS a) TO '{outside}/x.csv'", "write"),
    ("explain /* x */ analyze copy (select 1 as a) to '{outside}/x.csv'", "write"),
    ("EXPLAIN -- note\n ANALYSE\n COPY (SELECT 1 AS a) TO '{outside}/x.csv'", "write"),
    ("EXPLAIN ANALYZE CREATE TABLE t AS SELECT 1 AS a", "state"),
    ("EXPLAIN ANALYZE INSERT INTO answers SELECT * FROM answers", "state"),
    ("EXPLAIN ANALYZE COPY answers TO '{outside}/a.parquet' (FORMAT parquet)", "write"),
    ("EXPLAIN COPY (SELECT 1 AS a) TO '{outside}/x.csv'", "write"),
    # COPY to every kind of place
    ("COPY (SELECT 1 AS a) TO '{outside}/x.csv'", "write"),
    (f"COPY ({FORGE}) TO '{NEW_PART}' (FORMAT parquet)", "write"),
    ("COPY (SELECT 1 AS a) TO 'eaglestore://runs/x.parquet' (FORMAT parquet)", "write"),
    ("COPY (SELECT 1 AS a, 2 AS b) TO 'eaglestore://answers' (PARTITION_BY (a), OVERWRITE)", "write"),
    ("COPY (SELECT 1 AS a, 2 AS b) TO '{root}/answers' (PARTITION_BY (a), OVERWRITE)", "write"),
    ("COPY (SELECT 1 AS a) TO '{root}/../escaped.csv'", "write"),
    ("COPY (WITH x AS (SELECT 1 AS a) SELECT * FROM x) TO '{outside}/x.csv'", "write"),
    ("COPY answers FROM '{outside}/secret.csv'", "read"),
    ("SELECT 1; COPY (SELECT 1 AS a) TO '{outside}/x.csv'", "write"),
    ("PREPARE p AS COPY (SELECT 1 AS a) TO '{outside}/x.csv'; EXECUTE p", "write"),
    ("EXPORT DATABASE '{outside}/export'", "write"),
    ("EXPORT DATABASE 'eaglestore://export'", "write"),
    ("ATTACH '{outside}/evil.db' AS evil", "write"),
    ("ATTACH 'eaglestore://evil.db' AS evil", "write"),
    ("CREATE PERSISTENT SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')", "write"),
    ("INSTALL httpfs", "write"),
    ("FORCE INSTALL httpfs", "write"),
    ("LOAD '{outside}/evil.duckdb_extension'", "read"),
    ("UPDATE EXTENSIONS", "write"),
    ("CALL enable_logging(storage = 'file', storage_path = '{outside}/log')", "write"),
    ("SET profile_output = '{outside}/profile.json'", "write"),
    ("SET temp_directory = '{outside}'", "write"),
    # reads outside the store
    ("SELECT * FROM read_csv('/etc/passwd')", "read"),
    ("SELECT * FROM read_text('{outside}/secret.csv')", "read"),
    ("SELECT * FROM read_blob('{outside}/secret.csv')", "read"),
    ("SELECT * FROM read_text('{root}/../{outside_name}/secret.csv')", "read"),
    ("SELECT * FROM read_text('eaglestore://../{outside_name}/secret.csv')", "read"),
    ("SELECT * FROM read_text('eaglestore://link/secret.csv')", "read"),  # symlink out of the store
    ("SELECT * FROM glob('eaglestore://link/*')", "read"),
    ("SELECT * FROM read_text('eaglestore://.prefect/secret.txt')", "read"),  # hidden files
    ("SELECT * FROM read_text('.tmp/planted.csv')", "read"),
    ("SELECT * FROM glob('/etc/*')", "read"),
    ("SELECT * FROM sniff_csv('{outside}/secret.csv')", "read"),
    ("SELECT * FROM parquet_metadata('{outside}/x.parquet')", "read"),
    ("SELECT * FROM read_parquet('{outside}/*.parquet')", "read"),
    ("SELECT * FROM read_csv('https://example.com/x.csv')", "read"),
    ("DESCRIBE SELECT * FROM read_csv('{outside}/secret.csv')", "read"),
    ("SUMMARIZE SELECT * FROM read_csv('{outside}/secret.csv')", "read"),
    ("SELECT getenv('HOME')", "read"),
    # state of the connection: refused by the CLI and query(), harmless on connect()
    ("CREATE TABLE t AS SELECT * FROM answers", "state"),
    ("CREATE OR REPLACE VIEW runs AS SELECT 'FORGED' AS model_id", "state"),
    ("CREATE MACRO m(x) AS x", "state"),
    ("CREATE SEQUENCE s", "state"),
    ("CREATE TYPE mood AS ENUM ('a')", "state"),
    ("CREATE SCHEMA evil", "state"),
    ("CREATE SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')", "state"),
    ("INSERT INTO answers SELECT * FROM answers", "state"),
    ("UPDATE answers SET verdict = 'yes'", "state"),
    ("DELETE FROM answers", "state"),
    ("DROP VIEW runs", "state"),
    ("ALTER VIEW runs RENAME TO r2", "state"),
    ("SET enable_external_access = true", "state"),
    ("SET disabled_filesystems = ''", "state"),
    ("RESET lock_configuration", "state"),
    ("SET GLOBAL allowed_directories = ['/']", "state"),
    ("PRAGMA enable_profiling", "state"),
    ("SET VARIABLE x = 1", "state"),
    ("ATTACH ':memory:' AS m", "state"),
    ("USE memory", "state"),
    ("BEGIN TRANSACTION", "state"),
    ("CHECKPOINT", "state"),
    ("VACUUM", "state"),
    ("ANALYZE", "state"),
    ("PIVOT answers ON verdict USING count(*)", "state"),
]


def tree(root: Path) -> list[tuple[str, int, int]]:
    return sorted(
        (str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file()
    )


@pytest.fixture
def arena(synthetic_store: Path, tmp_path: Path, monkeypatch):
    """The store, a directory outside it with a secret and a Parquet file, a symbolic link from the
    store to that directory, a hidden file, and a working directory with `.tmp/` (DuckDB's default
    temp directory)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_text("user,password\nroot,hunter2\n")
    pq.write_table(pa.table({"a": [1]}), outside / "x.parquet")
    (synthetic_store / "link").symlink_to(outside, target_is_directory=True)
    (synthetic_store / ".prefect").mkdir()
    (synthetic_store / ".prefect" / "secret.txt").write_text("token")
    cwd = tmp_path / "cwd"
    (cwd / ".tmp").mkdir(parents=True)
    (cwd / ".tmp" / "planted.csv").write_text("a\n1\n")
    monkeypatch.chdir(cwd)
    part = next(synthetic_store.glob("runs/*/*/part-*.parquet"))
    fill = {"root": synthetic_store, "outside": outside, "outside_name": outside.name, "part": part}
    return fill, tmp_path


def _fill(sql: str, fill: dict) -> str:
    return sql.format(**fill) if "{" in sql else sql


@pytest.mark.parametrize(("sql", "kind"), HOSTILE, ids=[f"{i:02d}" for i in range(len(HOSTILE))])
def test_hostile_sql_changes_nothing_on_any_surface(arena, sql, kind):
    fill, everything = arena
    root = fill["root"]
    text = _fill(sql, fill)
    assert duckdb.extract_statements(text)  # it parses: the refusal below is not a syntax error
    before = tree(everything)

    cli = CliRunner().invoke(main, ["query", "--store", str(root), text])
    assert cli.exit_code == 1, cli.output
    assert cli.output.startswith("Error: ") and cli.output.count("\n") == 1, cli.output

    with pytest.raises((ReadOnlyQueryError, duckdb.Error, ValueError)):
        Store(root, create=False).query(text)

    con = Store(root, create=False).connect()
    try:
        if kind in ("write", "read"):
            with pytest.raises(duckdb.Error):
                con.execute(text).fetchall()
        else:
            try:
                con.execute(text)
            except duckdb.Error:
                pass  # refused is fine too; what matters is that nothing on disk changed
    finally:
        con.close()

    # store, outside directory and working directory untouched (the views read nothing else)
    assert tree(everything) == before


def test_the_table_is_large_and_every_surface_still_answers_a_select(arena):
    fill, _ = arena
    assert len(HOSTILE) >= 50
    root = fill["root"]
    sql = "SELECT count(*) AS n FROM answers"
    cli = CliRunner().invoke(main, ["query", "--store", str(root), "--format", "csv", sql])
    assert cli.exit_code == 0 and cli.output == "n\n12\n"
    assert Store(root).query(sql).column(0).to_pylist() == [12]
    assert Store(root).query("EXPLAIN ANALYZE " + sql).num_rows == 1  # EXPLAIN of a SELECT is fine
    con = Store(root).connect()
    assert con.execute(sql).fetchone() == (12,)
    # in-memory work on the connection is allowed; it stays in memory
    con.execute("CREATE TEMP TABLE mine AS SELECT * FROM answers")
    assert con.execute("SELECT count(*) FROM mine").fetchone() == (12,)
    # reading the store through its filesystem works; hidden files and links out do not
    assert con.execute("SELECT count(*) FROM glob('eaglestore://runs/*/*/*.parquet')").fetchone()[0] == 4
    con.close()


def test_explain_classification_follows_duckdbs_parser():
    for ok in (
        "EXPLAIN SELECT 1",
        "EXPLAIN ANALYZE SELECT 1",
        "EXPLAIN (SELECT 1)",
        "EXPLAIN (FORMAT json) SELECT 1",
        "explain /* c */ analyze select '(' AS p",
        "WITH a AS (SELECT 1) SELECT * FROM a",
        "FROM answers",
        "VALUES (1)",
    ):
        assert check_read_only(ok)
    for bad, kind in (
        ("EXPLAIN ANALYZE COPY (SELECT 1) TO 'x'", "EXPLAIN COPY"),
        ("EXPLAIN (FORMAT '(') COPY (SELECT 1) TO 'x'", "EXPLAIN COPY"),
        ("EXPLAIN ANALYZE CREATE TABLE t AS SELECT 1", "EXPLAIN CREATE"),
        ("EXPLAIN ANALYZE INSERT INTO t VALUES (1)", "EXPLAIN INSERT"),
    ):
        with pytest.raises(ReadOnlyQueryError, match=f"^{kind} statements are not allowed"):
            check_read_only(bad)


def test_positional_reader_keeps_a_position_per_thread(tmp_path):
    """DuckDB reads one handle from several threads as seek-then-read; with one shared position
    another thread's seek between the two returns the wrong bytes (corrupt Parquet footers)."""
    path = tmp_path / "data.bin"
    path.write_bytes(bytes(range(256)))
    f = PositionalReader(str(path))
    seeked, other_seeked = threading.Event(), threading.Event()
    got = {}

    def first():
        f.seek(10)
        seeked.set()
        other_seeked.wait()
        got["first"] = f.read(4)

    def second():
        seeked.wait()
        f.seek(200)
        other_seeked.set()
        got["second"] = f.read(4)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == {"first": bytes([10, 11, 12, 13]), "second": bytes([200, 201, 202, 203])}
    assert f.seek(-2, os.SEEK_END) == 254 and f.read() == bytes([254, 255]) and f.read(5) == b""
    f.close()


def test_quoting():
    assert quote_identifier("answers") == '"answers"'
    assert quote_identifier('a"; DROP TABLE x; --') == '"a""; DROP TABLE x; --"'
    assert quote_literal("it's") == "'it''s'"
    with pytest.raises(ValueError, match="NUL"):
        quote_identifier("a\x00b")


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
