"""What `compare` and `gate` cost at full POPE size: two runs of 9,000 questions (500 images, three
splits of 3,000, 80 object classes, both label sets) written with `tests.support.paired_runs`, then
`compare_runs` (every group and class, 2,000 paired replicates) and `run_gate` with gate.toml, timed
`--repeats` times each.

    .venv/bin/python benchmarks/compare_cost.py --workdir /tmp/compare-bench
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.support lives in the repository


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from audit.compare import compare_runs
    from audit.gate import load_policy, run_gate
    from storage.store import Store
    from tests.support.paired_runs import Q, write_run

    rng = np.random.default_rng(0)
    classes = [f"class{k}" for k in range(80)]
    questions, qid = [], 0
    for split in ("random", "popular", "adversarial"):
        for i in range(args.images):
            for k in range(6):
                label = "yes" if k < 3 else "no"
                repope = None if rng.random() < 0.05 else label
                questions.append(Q(f"{split}/{qid}", f"{i}.jpg", str(rng.choice(classes)), label, repope))
                qid += 1
    truth = {q.sample_id: q.pope for q in questions}

    def answers(p_wrong: float) -> dict[str, str]:
        flip = {"yes": "no", "no": "yes"}
        return {sid: flip[v] if rng.random() < p_wrong else v for sid, v in truth.items()}

    store = args.workdir / "store"
    st = Store(store)
    start = time.perf_counter()
    write_run(st, "baseline", "m", 1, questions, answers(0.10))
    write_run(st, "candidate", "m", 2, questions, answers(0.11))
    st.close()
    write_s = time.perf_counter() - start
    policy = load_policy(REPO / "gate.toml")
    times: dict[str, list[float]] = {"compare": [], "gate": []}
    for _ in range(args.repeats):
        t = time.perf_counter()
        c = compare_runs(store, "baseline", "candidate")
        times["compare"].append(time.perf_counter() - t)
        t = time.perf_counter()
        verdict = run_gate(store, policy, "candidate")
        times["gate"].append(time.perf_counter() - t)
    out = {
        "questions": len(questions),
        "images": args.images,
        "groups": len(c.groups),
        "write_two_runs_s": round(write_s, 2),
        "compare_s": [round(x, 2) for x in times["compare"]],
        "compare_median_s": round(statistics.median(times["compare"]), 2),
        "gate_s": [round(x, 2) for x in times["gate"]],
        "gate_median_s": round(statistics.median(times["gate"]), 2),
        "gate_verdict": verdict.verdict,
    }
    print(json.dumps(out))  # noqa: T201 - a benchmark prints its numbers


if __name__ == "__main__":
    main()
