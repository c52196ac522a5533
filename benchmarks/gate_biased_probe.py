"""Does the release gate catch a real regression and pass a model against itself, on probe worlds it
was not tuned on? A probe model with a stronger planted bias (`tests.support.biased_probe`, the same
recipe as the test) is audited beside the shipped model on fresh probe worlds; the committed
gate.toml judges the shipped model's second run against its first, and the biased model against
the shipped model. The AMCR limit is left out (these audits explain nothing, to stay quick).

    .venv/bin/python benchmarks/gate_biased_probe.py --world-seeds 1 2 --workdir /tmp/gate-bench
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.support lives in the repository


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world-seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--probe-images", type=int, default=40)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--workdir", type=Path, required=True)
    args = parser.parse_args()

    from audit import AuditConfig, run_audit
    from audit.compare import compare_runs
    from audit.gate import load_policy, run_gate
    from tests.support.biased_probe import plant_bias

    policy = load_policy(REPO / "gate.toml")
    policy = dataclasses.replace(policy, limits=tuple(lim for lim in policy.limits if lim.metric != "amcr"))
    biased = args.workdir / "biased"
    start = time.perf_counter()
    record = plant_bias(biased, steps=args.steps, scenes=256, threads=1)
    out: dict = {
        "plant_bias_s": round(time.perf_counter() - start, 1),
        "planted": record["planted"],
        "worlds": {},
    }
    for seed in args.world_seeds:
        store = args.workdir / f"store-{seed}"
        common = {
            "store": store,
            "seed": seed,
            "probe_images": args.probe_images,
            "explain": "none",
            "report": False,
        }
        first = run_audit(AuditConfig(**common))
        second = run_audit(AuditConfig(**common))
        candidate = run_audit(AuditConfig(model=str(biased), **common))
        world = {}
        for name, run in (("shipped again", second.run_id), ("biased", candidate.run_id)):
            verdict = run_gate(store, policy, run, baseline=first.run_id)
            c = compare_runs(store, first.run_id, run).group("repope", "all")
            hr = c.differences["hallucination_rate"]
            check = next(x for x in verdict.checks if x.limit.metric == "hallucination_rate")
            world[name] = {
                "hallucination_rate": [hr.baseline, hr.candidate],
                "change": hr.difference,
                "ci95": [hr.low, hr.high],
                "one_sided_lower_95": check.bound,
                "mcnemar": [c.mcnemar.new_errors, c.mcnemar.fixed, c.mcnemar.p_two_sided],
                "verdict": verdict.verdict,
                "failed_limits": [x.limit.describe() for x in verdict.checks if x.status == "fail"],
            }
        out["worlds"][seed] = world
    print(json.dumps(out, indent=1))  # noqa: T201 - a benchmark prints its numbers


if __name__ == "__main__":
    main()
