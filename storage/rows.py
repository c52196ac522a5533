"""Turning rows (dicts or Arrow tables) into Arrow tables of a pinned schema, with errors that name
the table, column and row at fault."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from storage.schemas import schema_for, with_metadata

# String columns that hold JSON objects: dicts given for them are serialised (sorted keys).
JSON_COLUMNS = {("runs", "decoding"), ("runs", "config"), ("explanations", "params")}

Rows = pa.Table | pa.RecordBatch | Sequence[Mapping[str, Any]] | Iterable[Mapping[str, Any]]


def to_json(value: Any) -> str:
    """Canonical JSON text (sorted keys, numpy scalars and arrays as plain numbers and lists)."""

    def default(obj: Any) -> Any:
        if isinstance(obj, np.ndarray):
            return obj.tolist()
        if isinstance(obj, np.generic):
            return obj.item()
        return str(obj)

    return json.dumps(value, sort_keys=True, default=default, ensure_ascii=False)


def _plain(value: Any) -> Any:
    """numpy arrays (also nested ones, e.g. per-token curves) as lists; pyarrow takes lists."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, list | tuple) and value and isinstance(value[0], np.ndarray):
        return [v.tolist() for v in value]
    return value


def _from_dicts(table: str, rows: Iterable[Mapping[str, Any]], schema: pa.Schema) -> pa.Table:
    names = set(schema.names)
    clean = []
    for i, row in enumerate(rows):
        unknown = set(row) - names
        if unknown:
            raise ValueError(
                f"row {i} for table {table!r} has unknown column(s) {sorted(unknown)}; "
                f"the schema has: {', '.join(schema.names)}"
            )
        out = {}
        for key, value in row.items():
            if (table, key) in JSON_COLUMNS and value is not None and not isinstance(value, str):
                value = to_json(value)
            out[key] = _plain(value)
        clean.append(out)
    columns = {}
    for field in schema:
        values = [row.get(field.name) for row in clean]
        try:
            columns[field.name] = pa.array(values, type=field.type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError) as exc:
            bad = next((i for i, v in enumerate(values) if not _converts(v, field.type)), None)
            where = f" (first bad value in row {bad}: {values[bad]!r})" if bad is not None else ""
            raise ValueError(
                f"column {field.name!r} of table {table!r} must be {field.type}{where}: {exc}"
            ) from exc
    return pa.Table.from_pydict(columns, schema=schema)


def _converts(value: Any, type_: pa.DataType) -> bool:
    try:
        pa.array([value], type=type_)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
        return False
    return True


def conform(table: str, data: pa.Table, schema: pa.Schema | None = None) -> pa.Table:
    """`data` with exactly `schema`'s columns, in order: missing nullable columns added as nulls,
    the others cast (safely) to the pinned types. Unknown columns are an error."""
    schema = schema or schema_for(table)
    unknown = set(data.column_names) - set(schema.names)
    if unknown:
        raise ValueError(
            f"table {table!r} has no column(s) {sorted(unknown)}; the schema has: {', '.join(schema.names)}"
        )
    arrays = []
    for field in schema:
        if field.name not in data.column_names:
            arrays.append(pa.nulls(data.num_rows, type=field.type))
            continue
        column = data.column(field.name)
        if column.type != field.type:
            try:
                column = column.cast(field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise ValueError(
                    f"column {field.name!r} of table {table!r} is {column.type} and cannot be cast to "
                    f"the pinned type {field.type}: {exc}"
                ) from exc
        arrays.append(column)
    return pa.Table.from_arrays(arrays, schema=schema)


def check_not_null(table: str, data: pa.Table, schema: pa.Schema) -> None:
    for field in schema:
        if not field.nullable and field.name in data.column_names:
            column = data.column(field.name)
            if column.null_count:
                first = column.is_null().to_pylist().index(True)
                raise ValueError(
                    f"column {field.name!r} of table {table!r} may not be null (row {first} has no value)"
                )


def to_table(table: str, rows: Rows, run_id: str) -> pa.Table:
    """Rows for `table` of run `run_id` as an Arrow table of the pinned schema (with the schema-version
    metadata). `run_id` is filled in where rows leave it out and must match where they give it."""
    schema = schema_for(table)
    if isinstance(rows, pa.RecordBatch):
        rows = pa.Table.from_batches([rows])
    if isinstance(rows, pa.Table):
        if "run_id" not in rows.column_names:
            rows = rows.append_column("run_id", pa.array([run_id] * rows.num_rows, pa.string()))
        data = conform(table, rows, schema)
    else:
        rows = [dict(r) if "run_id" in r else {**r, "run_id": run_id} for r in rows]
        data = _from_dicts(table, rows, schema)
    check_not_null(table, data, schema)
    other = set(data.column("run_id").to_pylist()) - {run_id}
    if other:
        raise ValueError(
            f"rows for table {table!r} carry run id(s) {sorted(other)} but are written to run {run_id!r}; "
            "drop the run_id column or write them to their own run"
        )
    return data.cast(with_metadata(schema))


def explanation_row(
    explanation: Mapping[str, Any],
    *,
    sample_id: str,
    question_id: int | None = None,
    target_text: str | None = None,
    search: str | None = None,
    map_path: str | None = None,
    map_sha256: str | None = None,
    heatmap_path: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """An `explanations` row from `eagle.explanation.Explanation.to_dict()` (plain lists; per-token
    curves (n+1, N) are stored transposed, one curve per target token). `extra` sets further
    columns, e.g. correction_area=0.12, corrected=True."""
    d = explanation
    derived = d.get("derived", {})
    insertion = np.asarray(d["insertion"], np.float64)  # (n+1, N)
    deletion = np.asarray(d["deletion"], np.float64)  # (n+1, N)
    params = dict(d.get("params", {}))
    for key in ("lambda1", "lambda2"):
        if key in d:
            params.setdefault(key, d[key])
    positions = [int(p) for p in d["target_positions"]]
    ids = [int(t) for t in d["target_ids"]]
    return {
        "sample_id": sample_id,
        "question_id": question_id,
        "target_text": target_text,
        "target_position": positions[0],
        "target_token_id": ids[0],
        "target_positions": positions,
        "target_ids": ids,
        "method": d["method"],
        "search": search or params.get("search"),
        "params": params,
        "n_regions": len(d["order"]),
        "region_order": [int(r) for r in d["order"]],
        "region_scores": d.get("region_scores"),
        "gains": d.get("gains"),
        "areas": d["areas"],
        "insertion_curve": derived.get("insertion_mean") or insertion.mean(axis=1).tolist(),
        "deletion_curve": derived.get("deletion_mean") or deletion.mean(axis=1).tolist(),
        "insertion_curves": insertion.T.tolist(),
        "deletion_curves": deletion.T.tolist(),
        "modality_step": derived.get("influence"),
        "modality_area": derived.get("influence_area"),
        "sensitive": derived.get("sensitive"),
        "insertion_auc": derived.get("insertion_auc"),
        "deletion_auc": derived.get("deletion_auc"),
        "forward_passes": d.get("forward_passes"),
        "wall_s": d.get("wall_time_s"),
        "map_path": map_path,
        "map_sha256": map_sha256,
        "heatmap_path": heatmap_path,
        **extra,
    }


def metrics_row(
    confusion: Any,
    *,
    benchmark: str,
    split: str,
    label_set: str,
    object_class: str = "all",
    n: int | None = None,
    accuracy_se: float | None = None,
    extra: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """A `metrics` row from a confusion result: `auditors.scoring.Confusion`, or anything whose
    `to_dict()` gives the same counts and rates (n, tp, fp, tn, fn, unparsed, precision, recall, f1,
    accuracy, yes_ratio). Benchmarks without confusion counts (captions) pass None and `n`; their
    metrics go in `extra` (e.g. chair_i, chair_s)."""
    if confusion is None and n is None:
        raise ValueError("a metrics row without confusion counts needs n (the samples scored)")
    counts = confusion.to_dict() if confusion is not None else {"n": n}
    return {
        "benchmark": benchmark,
        "split": split,
        "label_set": label_set,
        "object_class": object_class,
        **counts,
        "accuracy_se": accuracy_se,
        "extra": dict(extra) if extra else None,
    }
