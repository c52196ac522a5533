"""DuckDB views over a store directory, built from the pinned schemas.

Each table view reads `<store>/<table>/*/*/[!.]*.parquet` with hive partitioning (columns `model`
and `run_date`) and union-by-name (older files lacking newer columns read as NULL). A zero-row
relation typed from the schema is unioned in, so every view has all its columns even when the
table has no files yet (`allow_empty`); a view over an empty store returns no rows, not an error.

Compaction writes merged files that list, in `_origin` and `_from`, the files they replace;
rows of replaced files are filtered out by name, so a compacted file and its sources never
show twice, and sources can be deleted at any later time.

Views:
- run_records, run_events, answers, marks, explanations, metrics: the tables as stored; answers
  adds, for every row (also rows written before schema v3), `pope_label` / `repope_label` and
  `pope_outcome` / `repope_outcome` (TP, FP, TN, FN, unparsed, or NULL without a label), read from
  its `labels` and `outcomes` maps
- answer_labels: one row per sample and label set: label, verdict, outcome (any benchmark)
- causes: one row per ground-truth object of each explained hallucination: how much it drives it
- runs: one row per run with its latest status (`status`, `finished_at`, `error`, `attempts`)
"""

from __future__ import annotations

import posixpath
from pathlib import Path

from storage.layout import COMPACTED_GLOB, PART_GLOB
from storage.schemas import FROM_COLUMN, LEGACY_COLUMNS, ORIGIN_COLUMN, SCHEMAS, duckdb_type
from storage.sql import quote_identifier as qi
from storage.sql import quote_literal

# Stored table -> view name (runs is the derived view; its stored records are run_records).
VIEW_NAMES = {
    "runs": "run_records",
    "run_events": "run_events",
    "answers": "answers",
    "marks": "marks",
    "explanations": "explanations",
    "metrics": "metrics",
}

_HIVE = "hive_partitioning = true, hive_types = {'model': 'VARCHAR', 'run_date': 'DATE'}"
_READ = f"union_by_name = true, allow_empty = true, {_HIVE}"


def _typed_empty(columns: list[tuple[str, str]]) -> str:
    cols = ", ".join(f"CAST(NULL AS {t}) AS {qi(name)}" for name, t in columns)
    return f"SELECT {cols} WHERE false"


def table_view_sql(root: Path | str, table: str, view_name: str | None = None) -> str:
    """CREATE VIEW statement for one stored table (identifiers and the path quoted; no data in the SQL).

    `root` is the store directory, or the URL DuckDB reads it through (`eaglestore://`, see
    storage.readonly_fs)."""
    schema = SCHEMAS[table]
    base = posixpath.join(str(root), table)
    columns = [(f.name, duckdb_type(f.type)) for f in [*schema, *LEGACY_COLUMNS.get(table, ())]]
    extra = [("model", "VARCHAR"), ("run_date", "DATE"), ("filename", "VARCHAR")]
    lineage = [(ORIGIN_COLUMN, "VARCHAR"), (FROM_COLUMN, "VARCHAR")]
    files = quote_literal(posixpath.join(base, PART_GLOB))
    compacted = quote_literal(posixpath.join(base, COMPACTED_GLOB))
    select = ", ".join(qi(name) for name, _ in columns + extra[:2])
    return f"""
CREATE OR REPLACE VIEW {qi(view_name or VIEW_NAMES[table])} AS
WITH src AS (
    {_typed_empty(columns + extra + lineage)}
    UNION ALL BY NAME
    SELECT * FROM read_parquet({files}, filename = true, {_READ})
),
replaced AS (
    SELECT {qi(ORIGIN_COLUMN)} AS name FROM (
        {_typed_empty(lineage)}
        UNION ALL BY NAME
        SELECT * FROM read_parquet({compacted}, union_by_name = true, allow_empty = true)
    ) WHERE {qi(ORIGIN_COLUMN)} IS NOT NULL
    UNION
    SELECT {qi(FROM_COLUMN)} FROM (
        {_typed_empty(lineage)}
        UNION ALL BY NAME
        SELECT * FROM read_parquet({compacted}, union_by_name = true, allow_empty = true)
    ) WHERE {qi(FROM_COLUMN)} IS NOT NULL
)
SELECT {select} FROM src
WHERE parse_filename(src.filename) NOT IN (SELECT name FROM replaced)
"""


# v1/v2 answers stored POPE's two labels as columns; v3 stores a label-set map and the outcomes
# the benchmark computed. Old rows get both maps derived here (the outcome rule of
# auditors.scoring.outcome, which wrote them for v3 rows), so every query sees one shape.
_LEGACY_OUTCOME = """CASE
        WHEN verdict IS NULL OR {label} IS NULL THEN NULL
        WHEN verdict = 'unparsed' THEN 'unparsed'
        WHEN verdict = 'yes' AND {label} = 'yes' THEN 'TP'
        WHEN verdict = 'yes' AND {label} = 'no' THEN 'FP'
        WHEN verdict = 'no' AND {label} = 'no' THEN 'TN'
        WHEN verdict = 'no' AND {label} = 'yes' THEN 'FN'
    END"""


def _legacy_map(pope: str, repope: str) -> str:
    entries = f"[{{'key': 'pope', 'value': {pope}}}, {{'key': 'repope', 'value': {repope}}}]"
    return f"map_from_entries(list_filter({entries}, lambda e: e.value IS NOT NULL))"


DERIVED_VIEWS = {
    # Answers with both maps for every row, and POPE's label columns and outcomes derived from them.
    "answers": f"""
CREATE OR REPLACE VIEW answers AS
WITH a AS (
    SELECT * EXCLUDE (labels, outcomes, pope_label, repope_label),
        coalesce(labels, {_legacy_map("pope_label", "repope_label")}) AS labels,
        coalesce(outcomes, {
        _legacy_map(_LEGACY_OUTCOME.format(label="pope_label"), _LEGACY_OUTCOME.format(label="repope_label"))
    }) AS outcomes
    FROM answers_stored
)
SELECT *,
    labels['pope'] AS pope_label, labels['repope'] AS repope_label,
    outcomes['pope'] AS pope_outcome, outcomes['repope'] AS repope_outcome
FROM a
""",
    # One row per sample and label set: what the label set says, how the answer reads, the outcome.
    "answer_labels": """
CREATE OR REPLACE VIEW answer_labels AS
SELECT a.run_id, a.sample_id, a.benchmark, a.split, a.question_id, a.image, a.question, a.object_class,
    e.key AS label_set, e.value AS label, a.verdict, a.outcomes[e.key] AS outcome, a.answer_text,
    a.model, a.run_date
FROM answers a, unnest(map_entries(a.labels)) AS t(e)
""",
    # The cause table: per explained hallucination, every ground-truth object (and the background)
    # with its driver score and rank (explanations.drivers; only where the data has object masks).
    "causes": """
CREATE OR REPLACE VIEW causes AS
SELECT x.run_id, x.sample_id, x.target_position, a.benchmark, a.image, x.label_set, m.kind,
    m.object_class AS hallucinated_class, x.target_text, x.method, x.objective, d.rank,
    d.object AS driver_class, d.instance, d.score, d.top_share, x.model, x.run_date
FROM explanations x
JOIN answers_stored a ON a.run_id = x.run_id AND a.sample_id = x.sample_id
JOIN marks m ON m.run_id = x.run_id AND m.sample_id = x.sample_id
    AND m.token_index = x.target_position AND m.label_set = x.label_set,
    unnest(x.drivers) AS u(d)
WHERE x.error IS NULL AND x.drivers IS NOT NULL
""",
    # One row per run: its record plus the latest status event (append-only status history).
    "runs": """
CREATE OR REPLACE VIEW runs AS
WITH ev AS (
    SELECT run_id,
        -- the latest event as a whole (arg_max of a bare column would skip NULL errors)
        arg_max({'status': status, 'error': error}, event_at) AS last,
        max(event_at) AS last_event_at,
        count(*) FILTER (WHERE status = 'running') AS attempts
    FROM run_events GROUP BY run_id
)
SELECT r.*,
    coalesce(ev.last.status, 'running') AS status,
    CASE WHEN ev.last.status IN ('complete', 'failed') THEN ev.last_event_at END AS finished_at,
    ev.last.error AS error,
    coalesce(ev.attempts, 0) AS attempts
FROM run_records r LEFT JOIN ev USING (run_id)
""",
}


def create_views(con, root: Path | str) -> list[str]:  # con: duckdb.DuckDBPyConnection
    """Create every view on `con` for the store at `root` (a directory or the `eaglestore://` URL);
    returns the analyst-facing view names."""
    for table in SCHEMAS:
        # the stored answers feed the derived `answers` view
        con.execute(table_view_sql(root, table, "answers_stored" if table == "answers" else None))
    for sql in DERIVED_VIEWS.values():
        con.execute(sql)
    return [
        "runs", "run_records", "run_events", "answers", "answer_labels", "marks", "explanations", "causes",
        "metrics",
    ]  # fmt: skip
