"""What the read-only query surface costs: a store connection that reads through the read-only
filesystem (`Store.connect()`, storage.connection) vs the connection it replaced (DuckDB's local
filesystem with `allowed_directories` = the store, which let statements write there).

Writes a synthetic probe-like audit (tests.support.synthetic_store) of `--nights` runs, then times,
in alternating pairs (A, B, A, B, ...), opening a connection and running every documented example
query (storage.queries.EXAMPLES) on it. Prints the median of each arm and the paired ratio B/A with a
bootstrap 95% interval. Row counts of both arms must agree (checked).

    .venv/bin/python benchmarks/store_connection.py --nights 10 --images 200 --pairs 12
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support lives in the repository


def local_connection(root: Path):
    """The connection Store.connect() opened before the read-only filesystem (for comparison only)."""
    import duckdb

    from storage.sql import quote_literal
    from storage.views import create_views

    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    create_views(con, root)
    con.execute(f"SET allowed_directories = [{quote_literal(str(root) + os.sep)}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


def run_examples(con) -> int:
    from storage.queries import EXAMPLES, run_named

    rows = 0
    for query in EXAMPLES.values():
        params = {"run_id": "none"} if "run_id" in query.params else {}
        rows += run_named(con, query, **params).num_rows
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nights", type=int, default=10)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--pairs", type=int, default=12)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/store-connection-bench"))
    args = parser.parse_args()

    from storage.store import Store
    from tests.support.synthetic_store import write_synthetic_audit

    store_dir, world = args.workdir / "store", args.workdir / "world"
    if not store_dir.exists():
        write_synthetic_audit(store_dir, world, nights=args.nights, n_images=args.images)
    store = Store(store_dir, create=False)
    files = sum(1 for _ in store_dir.rglob("*.parquet"))

    arms = {"local": lambda: local_connection(store.root), "readonly": store.connect}
    times: dict[str, list[float]] = {"local": [], "readonly": []}
    rows: dict[str, set[int]] = {"local": set(), "readonly": set()}
    for open_con in arms.values():  # warm the page cache and imports once
        run_examples(open_con())
    for i in range(args.pairs):
        order = ["local", "readonly"] if i % 2 == 0 else ["readonly", "local"]
        for name in order:
            t0 = time.perf_counter()
            con = arms[name]()
            rows[name].add(run_examples(con))
            con.close()
            times[name].append(time.perf_counter() - t0)
    assert rows["local"] == rows["readonly"] and len(rows["local"]) == 1, rows

    ratio = np.array(times["readonly"]) / np.array(times["local"])
    rng = np.random.default_rng(0)
    boot = [float(np.median(rng.choice(ratio, ratio.size))) for _ in range(2000)]
    print(json.dumps({  # noqa: T201 (a benchmark prints its numbers)
        "machine": f"{platform.node()} ({os.cpu_count()} CPUs, shared)",
        "store_parquet_files": files,
        "example_queries_rows": rows["local"].pop(),
        "pairs": args.pairs,
        "local_median_s": round(statistics.median(times["local"]), 4),
        "readonly_median_s": round(statistics.median(times["readonly"]), 4),
        "ratio_readonly_over_local_median": round(float(np.median(ratio)), 3),
        "ratio_95ci": [round(float(np.percentile(boot, 2.5)), 3), round(float(np.percentile(boot, 97.5)), 3)],
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
