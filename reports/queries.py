"""The DuckDB queries behind a report, over the store's views (runs, answers, marks, explanations,
metrics). Every value from data or the user is a bound parameter; results are typed rows.

Conventions shown in the report and its docs:
- Confusion metrics per split and label set come from the `metrics` view (object_class 'all', any
  yes/no benchmark); a run without metrics rows falls back to counting the outcomes of
  `answer_labels` with the same formulas (auditors.scoring: rates over parsed answers, unparsed
  counted separately).
- Hallucination rate = false-positive rate FP / (FP + TN) under RePOPE labels, all splits pooled.
- Captions: CHAIR_i, CHAIR_s and recall per label set from the metrics rows of benchmark
  "captions"; the first label set of `CAPTION_LABEL_SETS` present is the headline.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

LABEL_SETS = ("pope", "repope")
SPLIT_ORDER = {"random": 0, "popular": 1, "adversarial": 2, "all": 9}
# Which label set a card or headline shows first: the relabelled set, then exhaustive instances.
LABEL_SET_PRIORITY = ("repope", "instances", "chair", "pope")
CAPTION_LABEL_SETS = ("instances", "repope", "pope", "chair")  # "chair": stores before schema v3


def _label_set_rank(column: str) -> str:
    """SQL ranking a label-set column by LABEL_SET_PRIORITY (others after, by name)."""
    cases = " ".join(f"WHEN '{ls}' THEN {i}" for i, ls in enumerate(LABEL_SET_PRIORITY))
    return f"CASE {column} {cases} ELSE {len(LABEL_SET_PRIORITY)} END"


class ReportError(ValueError):
    """The store or the selection cannot give a report (no runs, unknown run or model)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class RunInfo:
    run_id: str
    model_id: str
    started_at: dt.datetime
    status: str
    finished_at: dt.datetime | None
    backend: str
    engine_version: str | None
    model_revision: str | None
    decoding: dict[str, Any]
    seed: int | None
    data_checksums: dict[str, str]
    code_version: str | None
    benchmark: str | None
    config: dict[str, Any]
    host: str | None
    error: str | None


@dataclass(frozen=True, kw_only=True, slots=True)
class SplitMetrics:
    """Confusion counts and rates of one split under one label set (None = undefined rate)."""

    split: str
    label_set: str
    n: int
    tp: int
    fp: int
    tn: int
    fn: int
    unparsed: int
    precision: float | None
    recall: float | None
    f1: float | None
    accuracy: float | None
    yes_ratio: float | None
    source: str  # "metrics" (stored) or "answers" (counted by the report)

    @property
    def hallucination_rate(self) -> float | None:
        return self.fp / (self.fp + self.tn) if self.fp + self.tn else None


@dataclass(frozen=True, kw_only=True, slots=True)
class ChairMetrics:
    captions: int
    chair_i: float | None
    chair_s: float | None
    source: str
    label_set: str | None = None
    recall: float | None = None
    mentions: int | None = None  # verified mentions
    hallucinated: int | None = None
    unverified: int | None = None  # mentions no label covers (counted apart)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)  # metric -> 95% CI


@dataclass(frozen=True, kw_only=True, slots=True)
class ChairClassRow:
    object_class: str
    mentions: int
    hallucinated: int
    unverified: int
    present: int  # captions whose image holds the class
    chair_i: float | None
    recall: float | None


@dataclass(frozen=True, kw_only=True, slots=True)
class CauseRow:
    """One hallucinated class of the cause table: how often each ground-truth object drove it."""

    hallucinated_class: str
    explained: int  # explanations with object masks
    drivers: list[dict[str, Any]]  # driver_class, ranked_first, first_share, mean_score; most first

    @property
    def shown(self) -> list[dict[str, Any]]:
        """The drivers the report lists: every one ranked first at least once, else the top three."""
        first = [d for d in self.drivers if d["ranked_first"]]
        return first if first else self.drivers[:3]


@dataclass(frozen=True, kw_only=True, slots=True)
class TrendPoint:
    run_id: str
    started_at: dt.datetime
    status: str
    hallucination_rate: float | None  # RePOPE FP / (FP + TN), all splits
    f1: float | None  # RePOPE, all splits


@dataclass(frozen=True, kw_only=True, slots=True)
class ClassRow:
    object_class: str
    negatives: int  # questions about this class whose RePOPE label is "no" (parsed answers)
    fp: int
    tn: int
    positives: int
    fn: int
    fpr: float | None  # FP / (FP + TN)
    fnr: float | None  # FN / (FN + TP)
    fp_share: float | None  # this class's share of all false positives of the run
    explained: int  # cards (explained hallucinations) for this class
    mean_correction_area: float | None


@dataclass(frozen=True, kw_only=True)
class CardRow:
    """One explained hallucination: the marked token, its answer and the chosen explanation."""

    sample_id: str
    benchmark: str
    split: str | None
    image: str
    question: str
    object_class: str | None
    answer_text: str | None
    tokens: list[str]
    token_ids: list[int]
    token_index: int
    token_text: str | None
    char_start: int | None
    char_end: int | None
    label_set: str
    kind: str
    label: str | None  # the label set's ground truth ("yes"/"no"; for captions the classes present)
    counter_token_text: str | None
    counter_token_id: int | None
    logprob: float | None
    token_end: int | None  # one past the last marked token (None: one token, stores before v3)
    objective: str | None  # "tokens" | "span-absence" (None: stores before v3, tokens)
    method: str
    target_ids: list[int]
    target_positions: list[int]
    areas: list[float]
    insertion_curve: list[float]
    deletion_curve: list[float]
    insertion_auc: float | None
    deletion_auc: float | None
    map_path: str | None
    map_sha256: str | None
    correction_area: float | None
    corrected: bool | None
    corrected_answer: str | None
    correction_curve: list[float] | None
    influence: dict[int, float] = field(default_factory=dict)  # answer position -> I_t^area

    @property
    def explains_counter(self) -> bool:
        """True when the explained token is the counter token."""
        return self.counter_token_id is not None and self.counter_token_id in self.target_ids

    @property
    def explains_correct_outcome(self) -> bool:
        """True when the explanation is of the correct outcome (the counter token, or the absence of
        a caption mention): then 1 − map shows what drives the hallucination."""
        return self.explains_counter or self.objective == "span-absence"


def _rows(con, sql: str, params: list[Any] | dict[str, Any]) -> list[dict[str, Any]]:
    result = con.execute(sql, params)
    names = [d[0] for d in result.description]
    return [dict(zip(names, row, strict=True)) for row in result.fetchall()]


def _run_info(row: dict[str, Any]) -> RunInfo:
    def as_json(text: str | None) -> dict[str, Any]:
        try:
            value = json.loads(text) if text else {}
        except json.JSONDecodeError:
            return {"raw": text}
        return value if isinstance(value, dict) else {"value": value}

    return RunInfo(
        run_id=row["run_id"],
        model_id=row["model_id"],
        started_at=row["started_at"],
        status=row["status"],
        finished_at=row["finished_at"],
        backend=row["backend"],
        engine_version=row["engine_version"],
        model_revision=row["model_revision"],
        decoding=as_json(row["decoding"]),
        seed=row["seed"],
        data_checksums=dict(row["data_checksums"] or {}),
        code_version=row["code_version"],
        benchmark=row["benchmark"],
        config=as_json(row["config"]),
        host=row["host"],
        error=row["error"],
    )


_RUN_COLUMNS = """run_id, model_id, started_at, status, finished_at, backend, engine_version, model_revision,
    decoding, seed, data_checksums, code_version, benchmark, config, host, error"""


def select_run(con, run_id: str | None = None, model: str | None = None) -> RunInfo:
    """The run to report: `run_id` if given (checked against `model`), else the latest run of `model`
    (or of the whole store) by start time. Raises ReportError naming what exists instead."""
    if run_id is not None:
        rows = _rows(
            con, f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ? ORDER BY started_at LIMIT 1", [run_id]
        )
        if not rows:
            recent = [
                r["run_id"]
                for r in _rows(con, "SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 5", [])
            ]
            hint = f"recent runs: {', '.join(recent)}" if recent else "the store has no runs yet"
            raise ReportError(
                f"run {run_id!r} is not in the store ({hint}); pass one of them to --run, or --latest"
            )
        if model is not None and rows[0]["model_id"] != model:
            raise ReportError(
                f"run {run_id!r} belongs to model {rows[0]['model_id']!r}, not {model!r}; "
                "drop --model or pick a run of that model"
            )
        return _run_info(rows[0])
    where, params = ("WHERE model_id = ?", [model]) if model is not None else ("", [])
    rows = _rows(
        con, f"SELECT {_RUN_COLUMNS} FROM runs {where} ORDER BY started_at DESC, run_id DESC LIMIT 1", params
    )
    if not rows:
        models = [r["model_id"] for r in _rows(con, "SELECT DISTINCT model_id FROM runs ORDER BY 1", [])]
        if model is not None and models:
            raise ReportError(
                f"no runs of model {model!r} in the store; models with runs: {', '.join(models)}"
            )
        raise ReportError(
            "the store has no runs; run `eagle-audit audit` first or pass the --store it wrote to"
        )
    return _run_info(rows[0])


def previous_run(con, run: RunInfo) -> RunInfo | None:
    """The latest complete run of the same model that started before `run`, or None."""
    rows = _rows(
        con,
        f"""SELECT {_RUN_COLUMNS} FROM runs
        WHERE model_id = ? AND status = 'complete' AND (started_at < ? OR (started_at = ? AND run_id < ?))
        ORDER BY started_at DESC, run_id DESC LIMIT 1""",
        [run.model_id, run.started_at, run.started_at, run.run_id],
    )
    return _run_info(rows[0]) if rows else None


_RATES = """
    CASE WHEN tp + fp > 0 THEN tp / (tp + fp) END AS precision,
    CASE WHEN tp + fn > 0 THEN tp / (tp + fn) END AS recall,
    CASE WHEN 2 * tp + fp + fn > 0 THEN 2 * tp / (2 * tp + fp + fn) END AS f1,
    CASE WHEN tp + fp + tn + fn > 0 THEN (tp + tn) / (tp + fp + tn + fn) END AS accuracy,
    CASE WHEN tp + fp + tn + fn > 0 THEN (tp + fp) / (tp + fp + tn + fn) END AS yes_ratio"""


def split_metrics(con, run_id: str) -> list[SplitMetrics]:
    """Per split and label set for yes/no benchmarks (any label set with confusion counts), stored
    metrics first."""
    stored = _rows(
        con,
        """SELECT split, label_set, n, tp, fp, tn, fn, unparsed, precision, recall, f1, accuracy, yes_ratio
        FROM metrics WHERE run_id = ? AND object_class = 'all' AND tp IS NOT NULL""",
        [run_id],
    )
    source = "metrics"
    if not stored:
        source = "answers"
        stored = _rows(
            con,
            f"""WITH o AS (
                SELECT split, label_set, outcome FROM answer_labels
                WHERE run_id = $run AND split IS NOT NULL
                    AND outcome IN ('TP', 'FP', 'TN', 'FN', 'unparsed')
            ), c AS (
                SELECT coalesce(split, 'all') AS split, label_set, count(*) AS n,
                    count(*) FILTER (outcome = 'TP')::DOUBLE AS tp,
                    count(*) FILTER (outcome = 'FP')::DOUBLE AS fp,
                    count(*) FILTER (outcome = 'TN')::DOUBLE AS tn,
                    count(*) FILTER (outcome = 'FN')::DOUBLE AS fn,
                    count(*) FILTER (outcome = 'unparsed') AS unparsed
                FROM o GROUP BY GROUPING SETS ((split, label_set), (label_set))
            )
            SELECT split, label_set, n,
                tp::BIGINT AS tp, fp::BIGINT AS fp, tn::BIGINT AS tn, fn::BIGINT AS fn,
                unparsed, {_RATES} FROM c""",
            {"run": run_id},
        )
    out = [
        SplitMetrics(
            split=r["split"],
            label_set=r["label_set"],
            n=int(r["n"]),
            tp=int(r["tp"] or 0),
            fp=int(r["fp"] or 0),
            tn=int(r["tn"] or 0),
            fn=int(r["fn"] or 0),
            unparsed=int(r["unparsed"] or 0),
            precision=r["precision"],
            recall=r["recall"],
            f1=r["f1"],
            accuracy=r["accuracy"],
            yes_ratio=r["yes_ratio"],
            source=source,
        )
        for r in stored
    ]
    return sorted(out, key=lambda m: (SPLIT_ORDER.get(m.split, 5), m.split, m.label_set))


def chair_metrics(con, run_id: str) -> ChairMetrics | None:
    """CHAIR_i / CHAIR_s / recall of the run's captions under its headline label set (stored
    metrics; CHAIR_s counted from marks otherwise)."""
    rank = " ".join(f"WHEN '{ls}' THEN {i}" for i, ls in enumerate(CAPTION_LABEL_SETS))
    rows = _rows(
        con,
        f"""SELECT label_set, n, extra FROM metrics WHERE run_id = ? AND object_class = 'all'
            AND (benchmark = 'captions' OR label_set = 'chair')
        ORDER BY split = 'all' DESC, CASE label_set {rank} ELSE 9 END, label_set LIMIT 1""",
        [run_id],
    )
    if rows:
        extra = {str(k).lower(): v for k, v in (rows[0]["extra"] or {}).items()}

        def count(key: str) -> int | None:
            return None if extra.get(key) is None else int(extra[key])

        return ChairMetrics(
            captions=int(rows[0]["n"]),
            chair_i=extra.get("chair_i"),
            chair_s=extra.get("chair_s"),
            source="metrics",
            label_set=rows[0]["label_set"],
            recall=extra.get("recall"),
            mentions=count("mentions"),
            hallucinated=count("hallucinated"),
            unverified=count("unverified"),
            intervals={
                m: (extra[f"{m}_ci_low"], extra[f"{m}_ci_high"])
                for m in ("chair_i", "chair_s", "recall")
                if extra.get(f"{m}_ci_low") is not None and extra.get(f"{m}_ci_high") is not None
            },
        )
    rows = _rows(
        con,
        """SELECT count(*) AS captions,
            count(*) FILTER (sample_id IN (SELECT sample_id FROM marks WHERE run_id = $run
                AND kind = 'hallucinated_object')) AS hallucinated
        FROM answers WHERE run_id = $run AND benchmark = 'captions'""",
        {"run": run_id},
    )
    if not rows or not rows[0]["captions"]:
        return None
    n = int(rows[0]["captions"])
    return ChairMetrics(captions=n, chair_i=None, chair_s=rows[0]["hallucinated"] / n, source="answers")


def trend(con, model_id: str, include: str) -> list[TrendPoint]:
    """Per run of `model_id` (complete runs, plus `include`), oldest first: RePOPE hallucination rate
    and F1 over all splits, from summed per-split metrics, or counted from answers without them."""
    rows = _rows(
        con,
        """WITH r AS (
            SELECT run_id, started_at, status FROM runs
            WHERE model_id = $model AND (status = 'complete' OR run_id = $include)
        ), m AS (
            SELECT run_id,
                sum(tp)::DOUBLE AS tp, sum(fp)::DOUBLE AS fp, sum(tn)::DOUBLE AS tn, sum(fn)::DOUBLE AS fn
            FROM metrics WHERE run_id IN (SELECT run_id FROM r) AND label_set = 'repope'
                AND object_class = 'all' AND split <> 'all' AND tp IS NOT NULL
            GROUP BY run_id
        ), a AS (
            SELECT run_id,
                count(*) FILTER (repope_outcome = 'TP')::DOUBLE AS tp,
                count(*) FILTER (repope_outcome = 'FP')::DOUBLE AS fp,
                count(*) FILTER (repope_outcome = 'TN')::DOUBLE AS tn,
                count(*) FILTER (repope_outcome = 'FN')::DOUBLE AS fn
            FROM answers WHERE run_id IN (SELECT run_id FROM r) AND run_id NOT IN (SELECT run_id FROM m)
                AND repope_outcome IS NOT NULL
            GROUP BY run_id
        ), c AS (SELECT * FROM m UNION ALL SELECT * FROM a)
        SELECT r.run_id, r.started_at, r.status,
            CASE WHEN c.fp + c.tn > 0 THEN c.fp / (c.fp + c.tn) END AS hallucination_rate,
            CASE WHEN 2 * c.tp + c.fp + c.fn > 0 THEN 2 * c.tp / (2 * c.tp + c.fp + c.fn) END AS f1
        FROM r LEFT JOIN c USING (run_id) ORDER BY r.started_at, r.run_id""",
        {"model": model_id, "include": include},
    )
    return [TrendPoint(**r) for r in rows]


def primary_label_set(con, run_id: str) -> str | None:
    """The yes/no label set the per-class table and cards prefer: RePOPE when the run has it, else
    the first label set (by LABEL_SET_PRIORITY, then name) with yes/no outcomes."""
    rows = _rows(
        con,
        f"""SELECT label_set FROM answer_labels
        WHERE run_id = ? AND outcome IN ('TP', 'FP', 'TN', 'FN')
        GROUP BY label_set ORDER BY {_label_set_rank("label_set")}, label_set LIMIT 1""",
        [run_id],
    )
    return rows[0]["label_set"] if rows else None


def class_rows(con, run_id: str) -> list[ClassRow]:
    """False-positive and false-negative rates per object class under the run's primary yes/no label
    set (RePOPE for POPE runs; from answers), with the class's explained hallucinations and their
    mean correction area; most FPs first."""
    label_set = primary_label_set(con, run_id)
    if label_set is None:
        return []
    rows = _rows(
        con,
        """WITH a AS (
            SELECT object_class, outcome AS o FROM answer_labels
            WHERE run_id = $run AND label_set = $label_set AND object_class IS NOT NULL
                AND outcome IN ('TP', 'FP', 'TN', 'FN')
        ), c AS (
            SELECT object_class, count(*) FILTER (o = 'FP') AS fp, count(*) FILTER (o = 'TN') AS tn,
                count(*) FILTER (o = 'FN') AS fn, count(*) FILTER (o = 'TP') AS tp
            FROM a GROUP BY object_class
        ), e AS (
            SELECT m.object_class, count(DISTINCT m.sample_id) AS explained, avg(x.correction_area) AS area
            FROM marks m JOIN explanations x ON x.run_id = m.run_id AND x.sample_id = m.sample_id
                AND list_contains(x.target_positions, m.token_index) AND x.error IS NULL
            WHERE m.run_id = $run AND m.object_class IS NOT NULL
            GROUP BY m.object_class
        )
        SELECT coalesce(c.object_class, e.object_class) AS object_class,
            coalesce(fp + tn, 0) AS negatives, coalesce(fp, 0) AS fp, coalesce(tn, 0) AS tn,
            coalesce(tp + fn, 0) AS positives, coalesce(fn, 0) AS fn,
            CASE WHEN fp + tn > 0 THEN fp / (fp + tn) END AS fpr,
            CASE WHEN fn + tp > 0 THEN fn / (fn + tp) END AS fnr,
            CASE WHEN sum(fp) OVER () > 0 THEN fp / sum(fp) OVER () END AS fp_share,
            coalesce(e.explained, 0) AS explained, e.area AS mean_correction_area
        FROM c FULL JOIN e ON c.object_class = e.object_class
        ORDER BY coalesce(fp, 0) DESC, fpr DESC NULLS LAST, object_class""",
        {"run": run_id, "label_set": label_set},
    )
    return [ClassRow(**r) for r in rows]


def chair_classes(con, run_id: str, label_set: str | None) -> list[ChairClassRow]:
    """Per-class CHAIR of the run's captions under `label_set`, most hallucinated first."""
    if label_set is None:
        return []
    rows = _rows(
        con,
        """SELECT object_class, extra FROM metrics
        WHERE run_id = ? AND benchmark = 'captions' AND label_set = ? AND object_class <> 'all'""",
        [run_id, label_set],
    )
    out = []
    for r in rows:
        x = {str(k): v for k, v in (r["extra"] or {}).items()}
        out.append(
            ChairClassRow(
                object_class=r["object_class"],
                mentions=int(x.get("mentions") or 0),
                hallucinated=int(x.get("hallucinated") or 0),
                unverified=int(x.get("unverified") or 0),
                present=int(x.get("present") or 0),
                chair_i=x.get("chair_i"),
                recall=x.get("recall"),
            )
        )
    return sorted(out, key=lambda c: (-c.hallucinated, -(c.chair_i or 0.0), c.object_class))


def cause_rows(con, run_id: str) -> list[CauseRow]:
    """The cause table of the run: per hallucinated class, every ground-truth object class that
    appears in its explanations' drivers, with how often it ranked first (the `hallucination_causes`
    example query restricted to the run)."""
    from storage.queries import HALLUCINATION_CAUSES, run_named

    found = run_named(con, HALLUCINATION_CAUSES, run_id=run_id).to_pylist()
    out: dict[str, CauseRow] = {}
    for r in found:
        row = out.setdefault(
            r["hallucinated_class"],
            CauseRow(hallucinated_class=r["hallucinated_class"], explained=int(r["explained"]), drivers=[]),
        )
        row.drivers.append(
            {k: r[k] for k in ("driver_class", "ranked_first", "first_share", "mean_score", "mean_top_share")}
        )
    return sorted(out.values(), key=lambda c: (-c.explained, c.hallucinated_class))


def explanation_summary(con, run_id: str) -> dict[str, Any]:
    """Counts of marks and explanations, AMCR and CSR@10% over the run's correction scans
    (uncorrected samples count as failures in the CSR denominator)."""
    (row,) = _rows(
        con,
        """SELECT
            (SELECT count(DISTINCT (sample_id, token_index)) FROM marks WHERE run_id = $run) AS marked,
            count(*) AS explanations,
            count(*) FILTER (error IS NOT NULL) AS failed,
            count(correction_area) AS scanned,
            avg(correction_area) AS amcr,
            avg(CASE WHEN correction_area IS NULL THEN NULL
                     WHEN corrected AND correction_area <= 0.10 + 1e-12 THEN 1.0 ELSE 0.0 END) AS csr10,
            count(*) FILTER (corrected) AS corrected
        FROM explanations WHERE run_id = $run""",
        {"run": run_id},
    )
    return row


def answer_counts(con, run_id: str) -> list[dict[str, Any]]:
    """Answers per benchmark and split, with failed samples (answers.error) counted."""
    return _rows(
        con,
        """SELECT benchmark, coalesce(split, '-') AS split, count(*) AS answers,
            count(*) FILTER (error IS NOT NULL) AS failed, count(DISTINCT image) AS images
        FROM answers WHERE run_id = ? GROUP BY ALL ORDER BY benchmark, split""",
        [run_id],
    )


_METHOD_RANK = """CASE WHEN x.method = 'eagle-exact' THEN 0 WHEN x.method = 'eagle-efficient' THEN 1
    WHEN x.method LIKE 'eagle%' THEN 2 ELSE 3 END"""


def cards(con, run_id: str, limit: int | None = None) -> list[CardRow]:
    """One row per marked token (or token span) that has an explanation covering its position.

    A token marked under several label sets shows once (LABEL_SET_PRIORITY: RePOPE, then instances,
    then POPE). Among explanations of the token, one made under the mark's label set comes first,
    then one of the correct outcome (the counter token, or a span's absence), then a single-target
    explanation at the token's position, then EAGLE methods (exact before efficient) before baselines.
    """
    rows = _rows(
        con,
        f"""WITH m AS (
            SELECT * FROM marks WHERE run_id = $run
            QUALIFY row_number() OVER (PARTITION BY sample_id, token_index ORDER BY
                {_label_set_rank("label_set")}, label_set) = 1
        )
        SELECT m.sample_id, a.benchmark, a.split, a.image, a.question,
            coalesce(m.object_class, a.object_class) AS object_class, a.answer_text, a.tokens, a.token_ids,
            m.token_index, m.token_text, m.char_start, m.char_end, m.label_set, m.kind,
            a.labels[m.label_set] AS label, m.counter_token_text, m.counter_token_id, m.logprob, m.token_end,
            x.objective, x.method, x.target_ids, x.target_positions, x.areas, x.insertion_curve,
            x.deletion_curve, x.insertion_auc, x.deletion_auc, x.map_path, x.map_sha256, x.correction_area,
            x.corrected, x.corrected_answer, x.correction_curve
        FROM m JOIN answers a ON a.run_id = m.run_id AND a.sample_id = m.sample_id
        JOIN explanations x ON x.run_id = m.run_id AND x.sample_id = m.sample_id
            AND list_contains(x.target_positions, m.token_index) AND x.error IS NULL
        QUALIFY row_number() OVER (PARTITION BY m.sample_id, m.token_index ORDER BY
            (x.label_set = m.label_set) IS TRUE DESC,
            (list_contains(x.target_ids, m.counter_token_id) OR x.objective = 'span-absence') IS TRUE DESC,
            (x.target_position = m.token_index AND len(x.target_positions) = 1) DESC,
            {_METHOD_RANK}, x.method) = 1
        ORDER BY m.sample_id, m.token_index
        {"LIMIT $limit" if limit is not None else ""}""",
        {"run": run_id, **({"limit": limit} if limit is not None else {})},
    )
    out = [CardRow(**{k: (list(v) if isinstance(v, tuple) else v) for k, v in r.items()}) for r in rows]
    _attach_influence(con, run_id, out)
    return out


def _attach_influence(con, run_id: str, rows: list[CardRow]) -> None:
    """Fill `influence` (answer position -> I_t^area) from explanations of the answer's own tokens."""
    if not rows:
        return
    samples = sorted({r.sample_id for r in rows})
    found = _rows(
        con,
        f"""SELECT x.sample_id, x.target_positions, x.target_ids, x.modality_area
        FROM explanations x WHERE x.run_id = $run AND x.error IS NULL AND x.modality_area IS NOT NULL
            AND x.sample_id IN (SELECT unnest($samples))
        ORDER BY x.sample_id, {_METHOD_RANK} DESC, x.method DESC""",
        {"run": run_id, "samples": samples},
    )
    by_sample: dict[str, dict[int, float]] = {}
    ids_of = {r.sample_id: r.token_ids for r in rows}
    for f in found:
        ids = ids_of[f["sample_id"]] or []
        values = by_sample.setdefault(f["sample_id"], {})
        for pos, tid, value in zip(f["target_positions"], f["target_ids"], f["modality_area"], strict=False):
            # only explanations of the generated token itself (not of a counter token) colour it;
            # rows come worst method first so the preferred method overwrites
            if 0 <= pos < len(ids) and ids[pos] == tid and value is not None:
                values[pos] = float(value)
    for r in rows:
        r.influence.update(by_sample.get(r.sample_id, {}))
