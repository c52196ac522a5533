"""Compare what two runs stored, table by table, ignoring what legitimately differs between runs
(ids, times, map file names) and float noise below `atol` (a resumed run batches generation
differently, which moves logprobs in the last bits)."""

from __future__ import annotations

import math
from typing import Any

from storage.store import Store

# Columns that differ between two runs with the same results.
VOLATILE = {
    "run_id", "model", "run_date", "answered_at", "latency_s", "wall_s", "map_path", "event_at", "pid",
}  # fmt: skip
KEYS = {
    "answers": ("sample_id",),
    "marks": ("sample_id", "token_index", "label_set"),
    "explanations": ("sample_id", "method", "target_position"),
    "metrics": ("benchmark", "split", "label_set", "object_class"),
}


def run_rows(store: Store, run_id: str, table: str) -> dict[tuple, dict[str, Any]]:
    rows = store.query(f"SELECT * FROM {table} WHERE run_id = ?", [run_id]).to_pylist()
    out = {}
    for r in rows:
        key = tuple(r[k] for k in KEYS[table])
        assert key not in out, f"{table}: key {key} stored twice in run {run_id}"
        out[key] = {k: v for k, v in r.items() if k not in VOLATILE}
    return out


def differences(a: Any, b: Any, atol: float, path: str = "") -> list[str]:
    if isinstance(a, float) and isinstance(b, float):
        same = (math.isnan(a) and math.isnan(b)) or abs(a - b) <= atol
        return [] if same else [f"{path}: {a!r} != {b!r}"]
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{path}: keys {sorted(a)} != {sorted(b)}"]
        return [d for k in a for d in differences(a[k], b[k], atol, f"{path}.{k}")]
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        if len(a) != len(b):
            return [f"{path}: length {len(a)} != {len(b)}"]
        return [
            d
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for d in differences(x, y, atol, f"{path}[{i}]")
        ]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def run_differences(
    store_a: Store, run_a: str, store_b: Store, run_b: str, *, atol: float = 1e-6, tables=tuple(KEYS)
) -> list[str]:
    """Every difference between two runs' stored rows (empty when they hold the same results)."""
    out = []
    for table in tables:
        rows_a, rows_b = run_rows(store_a, run_a, table), run_rows(store_b, run_b, table)
        if rows_a.keys() != rows_b.keys():
            out.append(f"{table}: keys only in A {sorted(rows_a.keys() - rows_b.keys())[:5]}, "
                       f"only in B {sorted(rows_b.keys() - rows_a.keys())[:5]}")  # fmt: skip
            continue
        for key in rows_a:
            out += differences(rows_a[key], rows_b[key], atol, f"{table}{list(key)}")
    return out
