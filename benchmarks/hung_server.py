"""How long an audit waits on a model server that accepts connections and never answers.

Starts a server that answers the model list and then stays silent on every generation request
(tests/backends/hostile_servers.py), runs `eagle-audit audit --backend vllm-server --timeout T`
against it (with the Prefect flow, and with `--no-prefect`), and prints per mode: the exit status,
the generation attempts the server saw (the backend's retries, once: Prefect must not retry them),
the seconds from the first attempt to the CLI's exit, and the bound 5 x T + 7.5 s of backoff.

    .venv/bin/python benchmarks/hung_server.py --timeout 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "backends"))

MAX_BACKOFF_S = 0.5 + 1 + 2 + 4  # the transport's backoff caps before attempts 2-5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timeout", type=float, default=2.0, help="--timeout of the audit (s)")
    args = parser.parse_args()

    from hostile_servers import SilentServer

    from audit.probe_world import ensure_world
    from eagle.backends.http_transport import DEFAULT_MAX_RETRIES

    work = Path(tempfile.mkdtemp(prefix="hung-server-"))
    world = ensure_world(work, seed=3, n_images=16)
    attempts = DEFAULT_MAX_RETRIES + 1
    rows = []
    for mode in ("prefect", "no-prefect"):
        with SilentServer(answer_models=True) as srv:
            t0 = time.monotonic()
            cli = [sys.executable, "-m", "eagle_audit", "audit", "--backend", "vllm-server",
                   "--endpoint", srv.url, "--model", "fake", "--timeout", str(args.timeout),
                   "--limit", "1", "--explain", "none", "--no-report", "--dataset", "repope",
                   "--annotations", str(world), "--images", str(world / "images"),
                   "--store", str(work / f"store-{mode}")]  # fmt: skip
            if mode == "no-prefect":
                cli.append("--no-prefect")
            out = subprocess.run(cli, capture_output=True, text=True, cwd=REPO, check=False)
            ended = time.monotonic()
        chats = [t for t, line in srv.timed_requests if line.startswith("POST /v1/chat/completions")]
        rows.append({
            "mode": mode,
            "exit_status": out.returncode,
            "generation_attempts": len(chats),
            "start_to_first_attempt_s": round(chats[0] - t0, 1) if chats else None,
            "first_attempt_to_exit_s": round(ended - chats[0], 1) if chats else None,
            "bound_s": attempts * args.timeout + MAX_BACKOFF_S,
            "last_line": out.stderr.rstrip("\n").splitlines()[-1] if out.stderr else "",
        })  # fmt: skip
    print(json.dumps({  # noqa: T201 (a benchmark prints its numbers)
        "machine": f"{platform.node()} ({os.cpu_count()} CPUs, shared)",
        "timeout_s": args.timeout,
        "runs": rows,
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
