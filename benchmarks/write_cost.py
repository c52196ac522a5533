"""Cost of storing explanations as a run grows: the first and the last 200 of N explanations written
into one run, each explanation being the two rows an audit stores (the EAGLE row and the
answer-tokens row, n = 64 regions, realistic curve lengths).

Modes:
- `buffered` (what the audit engine does): rows go through one `storage.BufferedWriter`
  (flush every 256 rows), so the cost of an explanation is its share of a flush;
- `per-write`: one `Store.write` per explanation through one long-lived Store (one part file
  each): shows that a write no longer rescans the run's files;
- `fresh-store` (what the audit flow did before the engine): a new `Store` per explanation, whose
  key check rescans the run's files; only the first `--fresh-limit` writes (it grows).

    .venv/bin/python benchmarks/write_cost.py --n 2000 --json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def explanation_rows(i: int, n_regions: int = 64, answer_len: int = 3) -> list[dict]:
    rng = np.random.default_rng(i)
    curve = sorted(rng.random(n_regions + 1).tolist())

    def row(method: str, n_targets: int) -> dict:
        return {
            "sample_id": f"random/{i}", "question_id": i, "target_text": " No", "target_position": 0,
            "target_token_id": 7, "target_positions": list(range(n_targets)), "target_ids": [7] * n_targets,
            "method": method, "search": "efficient", "params": {"regions": n_regions}, "n_regions": n_regions,
            "region_order": rng.permutation(n_regions).tolist(),
            "region_scores": rng.random(n_regions).tolist(),
            "gains": rng.random(n_regions).tolist(), "areas": curve, "insertion_curve": curve,
            "deletion_curve": curve[::-1], "insertion_curves": [curve] * n_targets,
            "deletion_curves": [curve[::-1]] * n_targets, "modality_step": [0.5] * n_targets,
            "modality_area": [0.4] * n_targets, "sensitive": [True] * n_targets, "insertion_auc": 0.7,
            "deletion_auc": 0.2, "forward_passes": 1410, "wall_s": 3.1, "map_path": f"maps/x/{i}.npy",
            "map_sha256": "0" * 64, "cache_key": f"{i:064x}",
        }  # fmt: skip

    return [row("eagle-efficient", 1), row("answer-tokens", answer_len)]


def run(mode: str, n: int, root: Path) -> list[float]:
    from storage.buffer import BufferedWriter
    from storage.store import RunRecord, Store

    store = Store(root)
    run_id = store.begin_run(RunRecord(model_id="bench", backend="hf"))
    times = []
    if mode == "buffered":
        with BufferedWriter(store, run_id) as out:
            for i in range(n):
                t = time.perf_counter()
                out.add("explanations", explanation_rows(i))
                times.append(time.perf_counter() - t)
            t = time.perf_counter()
        times[-1] += time.perf_counter() - t  # the final flush belongs to the last write
    elif mode == "per-write":
        for i in range(n):
            t = time.perf_counter()
            store.write("explanations", explanation_rows(i), run_id)
            times.append(time.perf_counter() - t)
    else:  # fresh-store
        store.close()
        for i in range(n):
            t = time.perf_counter()
            Store(root).write("explanations", explanation_rows(i), run_id)
            times.append(time.perf_counter() - t)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=2000, help="explanations written into one run")
    ap.add_argument("--window", type=int, default=200, help="first/last this many are compared")
    ap.add_argument("--fresh-limit", type=int, default=400, help="writes of the fresh-store mode")
    ap.add_argument("--modes", default="buffered,per-write,fresh-store")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="write-cost-"))
    results = {}
    for mode in args.modes.split(","):
        n = min(args.n, args.fresh_limit) if mode == "fresh-store" else args.n
        times = run(mode, n, work / mode)
        first, last = times[: args.window], times[-args.window :]
        results[mode] = {
            "explanations": n,
            "first_ms_mean": round(1000 * statistics.fmean(first), 3),
            "last_ms_mean": round(1000 * statistics.fmean(last), 3),
            "last_over_first": round(statistics.fmean(last) / statistics.fmean(first), 2),
            "total_s": round(sum(times), 2),
            "part_files": len(list((work / mode / "explanations").rglob("part-*.parquet"))),
        }
    out = {
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, {platform.platform()}",
        "load_average_1m": round(os.getloadavg()[0], 2),
        "modes": results,
    }
    print(json.dumps(out, indent=None if args.json else 1))  # noqa: T201 - a benchmark prints its numbers


if __name__ == "__main__":
    main()
