"""Pinned Arrow schemas of the audit store: one `pyarrow.Schema` per table.

Field names, types and nullability are part of the store's contract with analysts, reports and
older stores: change them only together with SCHEMA_VERSION (tests pin a fingerprint per
version). Readers union files by column name, so adding a nullable column is backwards-compatible;
renaming or retyping one is not.

Tables (each row also carries the partition columns `model` and `run_date`, which live in the
directory names, not in the files):

- runs          one row per run: what is needed to reproduce it (written once, by begin_run)
- run_events    append-only status changes of a run (running, complete, failed); the `runs`
                view shows the latest one, so closing a run never rewrites a file
- answers       one row per sample per run: raw text, verdict, labels and outcomes per label set, logprobs
- marks         marked (hallucinated) answer tokens
- explanations  one EAGLE (or baseline) explanation of one or more target tokens of a sample
- metrics       confusion counts and rates per run, benchmark, split, label set and object class
"""

from __future__ import annotations

import hashlib

import pyarrow as pa

SCHEMA_VERSION = 4
# 2: explanations.cache_key
# 3: benchmark-neutral labels: answers.labels and answers.outcomes (label set -> label / outcome)
#    replace answers.pope_label / repope_label (the views still derive those for POPE rows);
#    marks.token_end (a caption mention spans tokens); explanations.objective, .label_set, .drivers
# 4: runs.question_set (the question-set fingerprint) and runs.sampling (how --limit chose)

# Parquet key-value metadata written into every part file.
METADATA_KEY = b"eagle_audit.schema_version"

TIMESTAMP = pa.timestamp("us", tz="UTC")


def _f(name: str, type_: pa.DataType, nullable: bool = True) -> pa.Field:
    return pa.field(name, type_, nullable=nullable)


RUNS = pa.schema(
    [
        _f("run_id", pa.string(), False),
        _f("started_at", TIMESTAMP, False),
        _f("model_id", pa.string(), False),  # raw model name, e.g. "Qwen/Qwen2.5-VL-7B-Instruct"
        _f("model_revision", pa.string()),  # hub revision, or sha256 digest of a local checkpoint
        _f("backend", pa.string(), False),  # "transformers", "vllm-server", "vllm-engine", ...
        _f("engine_version", pa.string()),  # e.g. "vllm 0.32.0" or "transformers 5.19.0"
        _f("decoding", pa.string(), False),  # JSON object: temperature, max_new_tokens, ...
        _f("seed", pa.int64()),
        _f("data_checksums", pa.map_(pa.string(), pa.string()), False),  # file name -> sha256
        _f("code_version", pa.string()),  # git commit or package version
        _f("benchmark", pa.string()),  # e.g. "pope", "probe", "captions"
        _f("config", pa.string()),  # JSON object: anything else needed to reproduce the run
        _f("host", pa.string()),
        _f("schema_version", pa.int32(), False),
        # sha256 of the run's question set: benchmark, splits, question (sample) ids and label-file
        # checksums (storage.verdicts.question_set_fingerprint); runs compare only on equal sets (v4)
        _f("question_set", pa.string()),
        _f("sampling", pa.string()),  # JSON object: how the questions were chosen (method, limit, seed, ...)
    ]
)

RUN_EVENTS = pa.schema(
    [
        _f("run_id", pa.string(), False),
        _f("status", pa.string(), False),  # "running", "complete" or "failed"
        _f("event_at", TIMESTAMP, False),
        _f("error", pa.string()),  # why the run failed (None otherwise)
        _f("host", pa.string()),
        _f("pid", pa.int64()),
    ]
)

ANSWERS = pa.schema(
    [
        _f("run_id", pa.string(), False),
        _f("sample_id", pa.string(), False),  # unique within a run, e.g. "pope/adversarial/17"
        _f("benchmark", pa.string(), False),
        _f("split", pa.string()),  # "random" | "popular" | "adversarial" | None (captions)
        _f("question_id", pa.int64()),
        _f("image", pa.string(), False),  # image file name or id
        _f("question", pa.string(), False),  # the prompt text after the image
        _f("object_class", pa.string()),  # the object the question asks about
        _f("answer_text", pa.string()),  # raw model output (untrusted); None when the sample failed
        # how the answer reads: "yes" | "no" | "unparsed" (yes/no questions); the classes a caption
        # mentions, comma-separated (captions); None when the sample failed
        _f("verdict", pa.string()),
        # label set -> ground-truth label: {"pope": "yes", "repope": "no"} (a label set that dropped
        # the question has no key); captions: {"instances": "moon, star"} (the classes present)
        _f("labels", pa.map_(pa.string(), pa.string())),
        # label set -> outcome: TP, FP, TN, FN or unparsed (yes/no questions); for captions one of
        # hallucinated, unverified, faithful, no_mentions
        _f("outcomes", pa.map_(pa.string(), pa.string())),
        _f("token_ids", pa.list_(pa.int64())),  # generated tokens, without EOS
        _f("tokens", pa.list_(pa.string())),  # decoded text of each token
        _f("logprobs", pa.list_(pa.float64())),  # log-probability of each generated token
        _f("finish_reason", pa.string()),  # "stop" | "length"
        _f("error", pa.string()),  # why this sample failed (e.g. a corrupt image), else None
        _f("latency_s", pa.float64()),
        _f("answered_at", TIMESTAMP),
    ]
)

MARKS = pa.schema(
    [
        _f("run_id", pa.string(), False),
        _f("sample_id", pa.string(), False),
        _f("token_index", pa.int32(), False),  # 0-based position in the answer tokens
        _f("token_end", pa.int32()),  # one past the last marked token (a mention may span tokens) (v3)
        _f("token_id", pa.int64()),
        _f("token_text", pa.string()),
        _f("char_start", pa.int32()),  # span of the token in answer_text, [start, end)
        _f("char_end", pa.int32()),
        _f("label_set", pa.string(), False),  # "pope" | "repope" | "instances" (captions) | ...
        _f("kind", pa.string(), False),  # "false_positive" | "false_negative" | "hallucinated_object"
        _f("object_class", pa.string()),
        _f("counter_token_id", pa.int64()),  # the token EAGLE explains instead (e.g. "No")
        _f("counter_token_text", pa.string()),
        _f("logprob", pa.float64()),
    ]
)

_DOUBLES = pa.list_(pa.float64())

DRIVER = pa.struct(
    [
        _f("rank", pa.int32()),  # 1 = the object that drives the hallucination most; None: background
        _f("object", pa.string()),  # the ground-truth object's class; None: the background
        _f("instance", pa.int32()),  # its id in the image's object masks
        _f("score", pa.float64()),  # mean of 1 − map over its pixels
        _f("top_share", pa.float64()),  # share of its pixels in the top 3 regions of 1 − map
    ]
)

EXPLANATIONS = pa.schema(
    [
        _f("run_id", pa.string(), False),
        _f("sample_id", pa.string(), False),
        _f("question_id", pa.int64()),
        _f("target_text", pa.string()),  # text of the explained token(s)
        _f("target_position", pa.int32(), False),  # answer position of the (first) target token
        _f("target_token_id", pa.int64()),
        _f("target_positions", pa.list_(pa.int32())),  # (N,) all target positions
        _f("target_ids", pa.list_(pa.int64())),  # (N,) all target token ids
        _f("method", pa.string(), False),  # "eagle-exact", "eagle-efficient", "random", ...
        _f("search", pa.string()),  # which search ran, e.g. "exact", "efficient", "early-stop"
        _f("params", pa.string()),  # JSON object of method settings
        _f("n_regions", pa.int32()),
        _f("region_order", pa.list_(pa.int32())),  # (n,) region ids, most important first
        _f("region_scores", _DOUBLES),  # (n,) attribution per region id, 1 = most important
        _f("gains", _DOUBLES),  # (n,) objective gain of each step
        _f("areas", _DOUBLES),  # (n+1,) cumulative image share of the first k regions
        _f("insertion_curve", _DOUBLES),  # (n+1,) mean over targets
        _f("deletion_curve", _DOUBLES),  # (n+1,) mean over targets
        _f("insertion_curves", pa.list_(_DOUBLES)),  # (N, n+1) one curve per target token
        _f("deletion_curves", pa.list_(_DOUBLES)),  # (N, n+1)
        _f("modality_step", _DOUBLES),  # (N,) I_t, step form
        _f("modality_area", _DOUBLES),  # (N,) I_t, area-weighted form
        _f("sensitive", pa.list_(pa.bool_())),  # (N,) p(full) - p(black) > 0.2
        _f("insertion_auc", pa.float64()),
        _f("deletion_auc", pa.float64()),
        _f("forward_passes", pa.int64()),
        _f("wall_s", pa.float64()),
        _f("map_path", pa.string()),  # .npy attribution map, relative to the store root
        _f("map_sha256", pa.string()),
        _f("heatmap_path", pa.string()),  # rendered heatmap image, relative to the store root
        _f("correction_area", pa.float64()),  # 1 - a_k of the first correcting k; 1 if none
        _f("corrected", pa.bool_()),
        _f("corrected_answer", pa.string()),
        _f("correction_curve", _DOUBLES),
        _f("error", pa.string()),  # why this explanation failed, else None
        # identity across runs of one store: sample, image digest, model weights digest, method
        # version and settings (audit.explain.explanation_key); equal keys, equal results (v2)
        _f("cache_key", pa.string()),
        # what was explained (v3): "tokens" (the targets' probabilities, e.g. a counter token) or
        # "span-absence" (1 − the joint probability of a caption mention's tokens); for both, the
        # regions ranked last (the top of 1 − map) drive the hallucination
        _f("objective", pa.string()),
        _f("label_set", pa.string()),  # the label set under which the explained token is wrong (v3)
        # the ground-truth objects scored by how much of 1 − map lies on them (v3; None without
        # object masks): auditors.causes.Driver
        _f("drivers", pa.list_(DRIVER)),
    ]
)

METRICS = pa.schema(
    [
        _f("run_id", pa.string(), False),
        _f("benchmark", pa.string(), False),
        _f("split", pa.string(), False),  # a split name, or "all"
        _f("label_set", pa.string(), False),  # "pope" | "repope" | "chair"
        _f("object_class", pa.string(), False),  # a class name, or "all"
        _f("n", pa.int64(), False),  # questions scored (unparsed included)
        _f("tp", pa.int64()),
        _f("fp", pa.int64()),
        _f("tn", pa.int64()),
        _f("fn", pa.int64()),
        _f("unparsed", pa.int64()),
        _f("precision", pa.float64()),
        _f("recall", pa.float64()),
        _f("f1", pa.float64()),
        _f("accuracy", pa.float64()),
        _f("yes_ratio", pa.float64()),  # share of *predicted* "yes"
        _f("accuracy_se", pa.float64()),  # standard error clustered by image
        _f("extra", pa.map_(pa.string(), pa.float64())),  # other metrics, e.g. CHAIR_i, CHAIR_s
    ]
)

SCHEMAS: dict[str, pa.Schema] = {
    "runs": RUNS,
    "run_events": RUN_EVENTS,
    "answers": ANSWERS,
    "marks": MARKS,
    "explanations": EXPLANATIONS,
    "metrics": METRICS,
}

# Columns that identify a row within a run: a write never stores the same key twice.
KEYS: dict[str, tuple[str, ...]] = {
    "runs": (),
    "run_events": (),
    "answers": ("sample_id",),
    "marks": ("sample_id", "token_index", "label_set"),
    "explanations": ("sample_id", "method", "target_position"),
    "metrics": ("benchmark", "split", "label_set", "object_class"),
}

# Columns that older schema versions wrote and v3 replaced: never written, still read (the views
# derive the current columns from them, compaction carries them over as they are).
LEGACY_COLUMNS: dict[str, tuple[pa.Field, ...]] = {
    "answers": (_f("pope_label", pa.string()), _f("repope_label", pa.string())),  # v1, v2
}

# Tables written by Store.write (runs and run_events are written by begin_run/finish_run).
DATA_TABLES = ("answers", "marks", "explanations", "metrics")

# Columns only compacted files carry: the part a row first came from, and the file it was merged from.
ORIGIN_COLUMN = "_origin"
FROM_COLUMN = "_from"

RUN_STATUSES = ("running", "complete", "failed")


def schema_for(table: str) -> pa.Schema:
    """The pinned schema of `table`; raises KeyError listing the known tables."""
    try:
        return SCHEMAS[table]
    except KeyError:
        raise KeyError(f"unknown table {table!r}; the store has: {', '.join(SCHEMAS)}") from None


def read_schema(table: str) -> pa.Schema:
    """What files of `table` may hold: the pinned schema plus its legacy columns (for compaction)."""
    schema = schema_for(table)
    return pa.schema(list(schema) + list(LEGACY_COLUMNS.get(table, ())))


def fingerprint() -> str:
    """sha256 over every table's field names, types and nullability (pinned per SCHEMA_VERSION)."""
    text = "\n".join(
        f"{table}.{f.name}:{f.type}:{'null' if f.nullable else 'not null'}"
        for table, schema in SCHEMAS.items()
        for f in schema
    )
    return hashlib.sha256(text.encode()).hexdigest()


def with_metadata(schema: pa.Schema) -> pa.Schema:
    return schema.with_metadata({METADATA_KEY: str(SCHEMA_VERSION).encode()})


def duckdb_type(type_: pa.DataType) -> str:
    """The DuckDB SQL type that reading `type_` from Parquet gives (used for empty typed views)."""
    if pa.types.is_string(type_) or pa.types.is_large_string(type_):
        return "VARCHAR"
    simple = {
        pa.int32(): "INTEGER",
        pa.int64(): "BIGINT",
        pa.float64(): "DOUBLE",
        pa.bool_(): "BOOLEAN",
        pa.date32(): "DATE",
    }
    if type_ in simple:
        return simple[type_]
    if pa.types.is_timestamp(type_):
        return "TIMESTAMP WITH TIME ZONE" if type_.tz else "TIMESTAMP"
    if pa.types.is_list(type_):
        return duckdb_type(type_.value_type) + "[]"
    if pa.types.is_map(type_):
        return f"MAP({duckdb_type(type_.key_type)}, {duckdb_type(type_.item_type)})"
    if pa.types.is_struct(type_):
        fields = ", ".join(f'"{f.name}" {duckdb_type(f.type)}' for f in type_)
        return f"STRUCT({fields})"
    raise TypeError(f"no DuckDB type mapping for Arrow type {type_}; add one to storage.schemas.duckdb_type")
