"""`eagle-audit query` and `eagle-audit store`: output formats, exit codes and exact error messages."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner

from eagle_audit.cli import main


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_query_formats(synthetic_store):
    sql = "SELECT run_id, status, attempts FROM runs ORDER BY run_id"
    as_json = run("query", "--store", str(synthetic_store), sql, "--format", "json")
    assert as_json.exit_code == 0
    assert json.loads(as_json.output) == [
        {"run_id": "a1", "status": "complete", "attempts": 1},
        {"run_id": "a2", "status": "complete", "attempts": 1},
        {"run_id": "a3", "status": "failed", "attempts": 1},
        {"run_id": "b1", "status": "complete", "attempts": 1},
    ]
    as_csv = run("query", "--store", str(synthetic_store), sql, "--format", "csv")
    assert list(csv.reader(io.StringIO(as_csv.output)))[:2] == [
        ["run_id", "status", "attempts"],
        ["a1", "complete", "1"],
    ]
    table = run("query", "--store", str(synthetic_store), sql)
    assert (
        table.exit_code == 0
        and "a3" in table.output
        and "failed" in table.output
        and "4 rows" in table.output
    )


def test_query_json_handles_dates_maps_and_lists(synthetic_store):
    out = run(
        "query",
        "--store",
        str(synthetic_store),
        "--format",
        "json",
        "SELECT run_date, data_checksums, decoding, started_at FROM runs WHERE run_id = 'a1'",
    )
    (row,) = json.loads(out.output)
    assert row["run_date"] == "2025-01-01"
    assert row["data_checksums"] == {"coco_repope_random.json": "ab" * 32}
    assert json.loads(row["decoding"]) == {"max_new_tokens": 8, "temperature": 0.0}
    assert row["started_at"].startswith("2025-01-01T02:00:00")


def test_query_binds_parameters(synthetic_store):
    out = run(
        "query",
        "--store",
        str(synthetic_store),
        "--format",
        "json",
        "SELECT sample_id FROM answers WHERE run_id = $run AND object_class = $cls ORDER BY 1",
        "--param",
        "run=a1",
        "--param",
        "cls=star",
    )
    assert [r["sample_id"] for r in json.loads(out.output)] == ["s1", "s2", "s6"]


def test_example_queries_from_the_command_line(synthetic_store):
    listing = run("query", "--list-examples")
    assert listing.exit_code == 0 and "nights_model_got_worse: " in listing.output
    out = run(
        "query",
        "--store",
        str(synthetic_store),
        "--example",
        "verdict_changes",
        "--param",
        "run_id=a1",
        "--format",
        "json",
    )
    assert [r["sample_id"] for r in json.loads(out.output)] == ["s6"]
    bad = run("query", "--store", str(synthetic_store), "--example", "verdict_change")
    assert bad.exit_code == 1
    assert bad.output.startswith(
        "Error: unknown example query 'verdict_change'. Did you mean: verdict_changes?"
    )


def test_missing_store_directory(tmp_path):
    missing = tmp_path / "nope"
    out = run("query", "--store", str(missing), "SELECT 1")
    assert out.exit_code == 1
    assert out.output == (
        f"Error: store directory '{missing}' does not exist; pass the --store directory an audit wrote to\n"
    )
    assert not missing.exists()
    assert run("store", "info", "--store", str(missing)).output == out.output


def test_bad_sql(synthetic_store):
    out = run("query", "--store", str(synthetic_store), "SELECT nope FROM runs")
    assert out.exit_code == 1
    assert out.output.startswith('Error: query failed: Binder Error: Referenced column "nope" not found')
    out = run("query", "--store", str(synthetic_store), "SELEC 1")
    assert out.exit_code == 1 and out.output.startswith(
        "Error: query failed: could not parse the query: Parser Error"
    )


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("COPY answers TO 'x.csv'", "COPY"),
        ("CREATE TABLE t (a INT)", "CREATE"),
        ("INSERT INTO answers SELECT * FROM answers", "INSERT"),
        ("ATTACH 'evil.db'", "ATTACH"),
    ],
)
def test_write_attempts_are_refused(synthetic_store, sql, kind):
    before = sorted(p.name for p in synthetic_store.rglob("*"))
    out = run("query", "--store", str(synthetic_store), sql)
    assert out.exit_code == 1
    assert out.output == (
        f"Error: {kind} statements are not allowed: queries on the store are read-only "
        f"(offending statement: {sql!r}); use SELECT\n"
    )
    assert sorted(p.name for p in synthetic_store.rglob("*")) == before


def test_query_needs_sql_or_an_example(synthetic_store):
    out = CliRunner().invoke(main, ["query", "--store", str(synthetic_store)])
    assert out.exit_code == 2 and "give either SQL or --example NAME" in out.output
    out = CliRunner().invoke(main, ["query", "SELECT 1"])
    assert out.exit_code == 2 and "Missing option '--store'" in out.output


def test_model_output_with_rich_markup_prints_literally(tmp_path):
    from storage_fixtures import MODEL_A, answer, record

    from storage.store import Store

    store = Store(tmp_path / "s")
    store.begin_run(record(MODEL_A, 1, "r1"))
    store.write(
        "answers", [{**answer("s1", "star", "yes", "no", "no", "i"), "answer_text": "[bold]Yes[/bold]"}], "r1"
    )
    out = run("query", "--store", str(tmp_path / "s"), "SELECT answer_text FROM answers")
    assert "[bold]Yes[/bold]" in out.output


def test_store_info_and_compact(synthetic_store):
    info = run("store", "info", "--store", str(synthetic_store))
    assert info.exit_code == 0
    assert "answers" in info.output and "4 runs" in info.output and "failed" in info.output
    out = run("store", "compact", "--store", str(synthetic_store), "--grace", "0")
    assert out.exit_code == 0 and out.output.startswith("merged ")
    again = run("store", "compact", "--store", str(synthetic_store), "--grace", "0")
    assert (
        again.output
        == "merged 0 files into 0 (0 rows); deleted 0 replaced files; removed 0 temporary files\n"
    )
    rows = run(
        "query", "--store", str(synthetic_store), "--format", "json", "SELECT count(*) AS n FROM answers"
    )
    assert json.loads(rows.output) == [{"n": 12}]


def test_commands_have_help():
    for args in (["query"], ["store"], ["store", "info"], ["store", "compact"]):
        out = run(*args, "--help")
        assert out.exit_code == 0 and "Usage:" in out.output
