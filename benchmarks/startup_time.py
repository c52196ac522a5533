"""Time from starting `eagle-audit audit` to its first model call, with the temporary Prefect API
server (the default) and without Prefect (`--no-prefect`), alternating the two modes each round.

The first model call is marked by the engine's "generate: N items to ask" line, logged just
before the first batch goes to the model; the clock runs from the process start to the moment the
line reaches this script. A warm-up run writes the probe world into the store first, so every
timed run starts from the same state (a new run in an existing store).

With `--endpoint URL` (a server started with `eagle-audit serve probe`) it also times both modes
against that served model (`--backend vllm-server`), where the CLI never imports torch.

    .venv/bin/python benchmarks/startup_time.py --rounds 5 --json [--endpoint http://127.0.0.1:8000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MARK = re.compile(r"generate: \d+ items to ask")


def time_to_first_call(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "eagle_audit", "audit", *args], env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        for line in proc.stderr:
            if MARK.search(line):
                return time.perf_counter() - start
        raise RuntimeError(f"the audit ended (code {proc.wait()}) without reaching its first model call")
    finally:
        proc.kill()
        proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--endpoint", help="also time audits against this served probe model")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="startup-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PREFECT_HOME"] = str(work / "prefect")
    common = ["--store", str(work / "store"), "--probe-images", "4", "--explain", "none", "--no-report"]
    time_to_first_call([*common, "--no-prefect"], env)  # warm-up: writes the probe world
    modes = {"no_prefect": [*common, "--no-prefect"], "temporary_prefect_server": common}
    if args.endpoint:
        served = [*common, "--backend", "vllm-server", "--endpoint", args.endpoint]
        modes |= {"served_no_prefect": [*served, "--no-prefect"], "served_temporary_prefect_server": served}
    times: dict[str, list[float]] = {mode: [] for mode in modes}
    for _ in range(args.rounds):
        for mode, mode_args in modes.items():
            times[mode].append(time_to_first_call(mode_args, env))
    out = {
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, {platform.platform()}",
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        "rounds": args.rounds,
        **{
            mode: {
                "median_s": round(statistics.median(v), 2),
                "min_s": round(min(v), 2),
                "max_s": round(max(v), 2),
            }
            for mode, v in times.items()
        },
    }
    print(json.dumps(out, indent=None if args.json else 1))  # noqa: T201 - a benchmark prints its numbers


if __name__ == "__main__":
    main()
