"""Documented example queries over the store's views, as named constants with bound parameters.

Each `NamedQuery` states what it answers, its SQL (parameters written `$name`, values never
spliced into the text) and default parameter values. Run one with `run_named(con, QUERY, k=v)`
or from the shell with `eagle-audit query --store DIR --example NAME [--param k=v]`.

Definitions used below:
- hallucination (yes/no questions): a false positive, the model said "yes" where the label is "no"
  (`answer_labels.outcome = 'FP'` under the chosen label set); a caption's hallucination is a
  mention of a class its label set says is absent (`outcome = 'hallucinated'`, one `marks` row per
  mention);
- hallucination rate: hallucinations / questions labelled "no" (unparsed answers count in the
  denominator, never in the numerator);
- only runs whose latest status is `complete` are compared across nights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa


@dataclass(frozen=True, kw_only=True, slots=True)
class NamedQuery:
    name: str
    description: str  # the question it answers, one sentence
    sql: str
    params: dict[str, Any] = field(default_factory=dict)  # parameter -> default value

    def bind(self, **overrides: Any) -> dict[str, Any]:
        """The parameter values: defaults updated with `overrides` (unknown names are an error)."""
        unknown = set(overrides) - set(self.params)
        if unknown:
            known = ", ".join(self.params) or "none"
            raise ValueError(f"query {self.name!r} has no parameter(s) {sorted(unknown)}; it takes: {known}")
        return {**self.params, **overrides}


HALLUCINATION_RATE_BY_CLASS_AND_NIGHT = NamedQuery(
    name="hallucination_rate_by_class_and_night",
    description="How often each model said 'yes' to an absent object, per object class and night.",
    sql="""
SELECT r.model_id, a.run_date AS night, a.object_class,
    count(*) FILTER (WHERE a.label = 'no') AS negatives,
    count(*) FILTER (WHERE a.outcome = 'FP') AS hallucinations,
    round(hallucinations / nullif(negatives, 0), 4) AS hallucination_rate
FROM answer_labels a JOIN runs r USING (run_id)
WHERE r.status = 'complete' AND a.label_set = $label_set AND ($model IS NULL OR r.model_id = $model)
GROUP BY ALL
HAVING negatives > 0
ORDER BY r.model_id, night, a.object_class
""",
    params={"label_set": "repope", "model": None},
)

NIGHTS_MODEL_GOT_WORSE = NamedQuery(
    name="nights_model_got_worse",
    description="The nights a model's accuracy fell by more than min_drop since its previous complete run.",
    sql="""
WITH m AS (
    SELECT r.model_id, m.benchmark, r.started_at, m.run_date AS night, m.run_id, m.accuracy
    FROM metrics m JOIN runs r USING (run_id)
    WHERE r.status = 'complete' AND m.label_set = $label_set AND m.split = $split AND m.object_class = 'all'
), d AS (
    SELECT *,
        lag(accuracy) OVER w AS previous_accuracy,
        lag(night) OVER w AS previous_night
    FROM m WINDOW w AS (PARTITION BY model_id, benchmark ORDER BY started_at)
)
SELECT model_id, benchmark, previous_night, night, run_id, previous_accuracy, accuracy,
    round(accuracy - previous_accuracy, 4) AS change
FROM d
WHERE previous_accuracy - accuracy > $min_drop
ORDER BY model_id, benchmark, night
""",
    params={"label_set": "repope", "split": "all", "min_drop": 0.0},
)

REGIONS_DRIVING_HALLUCINATIONS = NamedQuery(
    name="regions_driving_hallucinations",
    description=(
        "The image regions that drove the most hallucinations: for each explained wrong answer (or "
        "hallucinated caption mention), the last k regions of the explanation's order."
    ),
    sql="""
WITH wrong AS (
    SELECT DISTINCT e.run_id, e.sample_id, e.target_position, a.image,
        coalesce(k.object_class, a.object_class) AS object_class,
        list_slice(e.region_order, -$k, -1) AS driving
    FROM explanations e
    JOIN answer_labels a ON a.run_id = e.run_id AND a.sample_id = e.sample_id
    LEFT JOIN marks k ON k.run_id = e.run_id AND k.sample_id = e.sample_id
        AND k.token_index = e.target_position AND k.label_set = a.label_set
    WHERE a.label_set = $label_set AND a.outcome IN ('FP', 'FN', 'hallucinated')
        AND (a.benchmark <> 'captions' OR k.sample_id IS NOT NULL)
        AND e.error IS NULL AND len(e.region_order) > 0
        AND e.method LIKE 'eagle-%'  -- the search itself, not the rows that reuse its order
)
SELECT image, region, count(*) AS hallucinations,
    list(DISTINCT object_class ORDER BY object_class) AS object_classes,
    count(DISTINCT run_id) AS runs
FROM wrong, unnest(driving) AS u(region)
GROUP BY image, region
ORDER BY hallucinations DESC, image, region
LIMIT $limit
""",
    params={"label_set": "repope", "k": 1, "limit": 20},
)

HALLUCINATION_CAUSES = NamedQuery(
    name="hallucination_causes",
    description=(
        "The cause table: per hallucinated class, which ground-truth objects drive its explained "
        "hallucinations (rank 1 = the object with the most 1 − map on it), and how often."
    ),
    sql="""
WITH c AS (
    SELECT * FROM causes
    WHERE ($run_id IS NULL OR run_id = $run_id) AND ($benchmark IS NULL OR benchmark = $benchmark)
        AND method LIKE 'eagle-%'
), explained AS (
    SELECT hallucinated_class, count(DISTINCT (run_id, sample_id, target_position)) AS explained
    FROM c GROUP BY hallucinated_class
)
SELECT c.hallucinated_class, coalesce(c.driver_class, '(background)') AS driver_class,
    count(*) FILTER (WHERE c.rank = 1) AS ranked_first, e.explained,
    round(count(*) FILTER (WHERE c.rank = 1) / e.explained, 4) AS first_share,
    round(avg(c.score), 4) AS mean_score, round(avg(c.top_share), 4) AS mean_top_share
FROM c JOIN explained e USING (hallucinated_class)
GROUP BY c.hallucinated_class, c.driver_class, e.explained
ORDER BY c.hallucinated_class, ranked_first DESC, mean_score DESC, driver_class
""",
    params={"run_id": None, "benchmark": None},
)

CAPTION_HALLUCINATIONS = NamedQuery(
    name="caption_hallucinations",
    description="Captions with hallucinated mentions: the caption, the made-up classes, and the label set.",
    sql="""
SELECT a.run_id, a.image, m.label_set, a.answer_text AS caption,
    list(m.object_class ORDER BY m.token_index) AS hallucinated, a.labels[m.label_set] AS present
FROM answers a JOIN marks m USING (run_id, sample_id)
WHERE a.benchmark = 'captions' AND m.kind = 'hallucinated_object' AND ($run_id IS NULL OR a.run_id = $run_id)
GROUP BY ALL
ORDER BY a.run_id, a.image, m.label_set
""",
    params={"run_id": None},
)

VERDICT_CHANGES = NamedQuery(
    name="verdict_changes",
    description="Answers of one run scored differently under POPE and RePOPE labels (relabelled or removed).",
    sql="""
SELECT sample_id, split, image, question, verdict, pope_label, repope_label, pope_outcome, repope_outcome
FROM answers
WHERE run_id = $run_id AND pope_outcome IS DISTINCT FROM repope_outcome
ORDER BY sample_id
""",
    params={"run_id": None},
)

UNPARSED_ANSWERS = NamedQuery(
    name="unparsed_answers",
    description="Per run: how many answers could not be parsed as yes/no, with up to 5 examples.",
    sql="""
SELECT a.run_id, r.model_id, r.started_at,
    count(*) AS answers,
    count(*) FILTER (WHERE a.verdict = 'unparsed') AS unparsed,
    list(a.answer_text ORDER BY a.sample_id) FILTER (WHERE a.verdict = 'unparsed')[1:5] AS examples
FROM answers a JOIN runs r USING (run_id)
GROUP BY ALL
ORDER BY r.started_at, a.run_id
""",
)

RUN_OVERVIEW = NamedQuery(
    name="run_overview",
    description="Every run with its status, answer, mark and explanation counts.",
    sql="""
SELECT r.run_id, r.model_id, r.backend, r.started_at, r.status, r.finished_at, r.attempts,
    (SELECT count(*) FROM answers a WHERE a.run_id = r.run_id) AS answers,
    (SELECT count(*) FROM marks k WHERE k.run_id = r.run_id) AS marks,
    (SELECT count(*) FROM explanations e WHERE e.run_id = r.run_id) AS explanations
FROM runs r
ORDER BY r.started_at, r.run_id
""",
)

EXAMPLES: dict[str, NamedQuery] = {
    q.name: q
    for q in (
        RUN_OVERVIEW,
        HALLUCINATION_RATE_BY_CLASS_AND_NIGHT,
        NIGHTS_MODEL_GOT_WORSE,
        REGIONS_DRIVING_HALLUCINATIONS,
        HALLUCINATION_CAUSES,
        CAPTION_HALLUCINATIONS,
        VERDICT_CHANGES,
        UNPARSED_ANSWERS,
    )
}


def get_example(name: str) -> NamedQuery:
    try:
        return EXAMPLES[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name, EXAMPLES, n=3)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise KeyError(f"unknown example query {name!r}.{hint} Available: {', '.join(EXAMPLES)}") from None


def run_named(con, query: NamedQuery, **params: Any) -> pa.Table:  # con: duckdb.DuckDBPyConnection
    """Run `query` on `con` (e.g. `Store.connect()`) with its defaults updated by `params`."""
    return con.sql(query.sql, params=query.bind(**params) or None).to_arrow_table()
