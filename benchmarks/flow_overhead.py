"""Prefect bookkeeping vs model time in the audit flow, per sample, for 100 to 1,000 samples.

For each size N the audit flow runs on the probe world with the shipped probe model in-process
and `--explain none` (explanations are model time only; they would hide the bookkeeping). Model
time is the wall time during which at least one `backend.generate` call was running (the union of
the calls' intervals: generate tasks run on several threads at once); the rest of the flow's wall
time is orchestration, data loading, marking, metrics and store writes. The temporary Prefect
API's start-up is measured separately, once.

    .venv/bin/python benchmarks/flow_overhead.py --sizes 100,500,1000 --json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100,500,1000")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="flow-overhead-"))
    os.environ.setdefault("PREFECT_HOME", str(work / "prefect"))
    os.environ.setdefault("PREFECT_RESULTS_LOCAL_STORAGE_PATH", str(work / "results"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "300")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    import threading

    from pipeline_timing import busy_seconds
    from prefect.testing.utilities import prefect_test_harness

    import audit.generate as steps
    from flows.audit_flow import audit_flow

    intervals: list[tuple[float, float]] = []
    lock = threading.Lock()
    real_backend_for = steps.backend_for

    def timed_backend_for(cfg):
        backend = real_backend_for(cfg)
        if not getattr(backend, "_timed", False):
            generate = backend.generate

            def timed(requests):
                t = time.perf_counter()
                try:
                    return generate(requests)
                finally:
                    with lock:
                        intervals.append((t, time.perf_counter()))

            backend.generate = timed
            backend._timed = True
        return backend

    steps.backend_for = timed_backend_for  # the generate step's model access

    t0 = time.perf_counter()
    with prefect_test_harness(server_startup_timeout=300):
        startup = time.perf_counter() - t0
        # A first small run loads the model once, so the timed runs measure steady state.
        audit_flow(store=str(work / "warm"), probe_images=4, explain="none", report=False)
        rows = []
        for n in sizes:
            store = work / f"store-{n}"
            images = n // 5 + 20  # about 6.7 unique questions per scene; --limit trims to n
            intervals.clear()
            start = time.perf_counter()
            summary = audit_flow(store=str(store), probe_images=images, limit=n, explain="none", report=False)
            wall = time.perf_counter() - start
            model_s = busy_seconds(intervals)
            rows.append(
                {
                    "samples": summary["questions"],
                    "wall_s": round(wall, 2),
                    "model_s": round(model_s, 2),
                    "overhead_s": round(wall - model_s, 2),
                    "overhead_ms_per_sample": round(1000 * (wall - model_s) / summary["questions"], 1),
                    "model_ms_per_sample": round(1000 * model_s / summary["questions"], 1),
                }
            )
    out = {
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, {platform.platform()}",
        "prefect_api_startup_s": round(startup, 1),
        "runs": rows,
    }
    print(json.dumps(out, indent=None if args.json else 1))  # noqa: T201 - a benchmark prints its numbers


if __name__ == "__main__":
    main()
