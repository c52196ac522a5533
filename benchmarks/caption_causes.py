"""Caption audits of the probe world: do the explanations trace each hallucinated mention to the
planted anchor that causes it? And the POPE audit of the same world, for the same cause table.

Runs `eagle-audit audit --benchmark captions` (and `--benchmark pope` with `--pope`) through the
engine on a fresh probe world with the shipped model, then reads the store:

- anchor_first: among explained caption hallucinations of a planted partner (star, ring) whose
  anchor (moon, arrow) is in the image, the share whose rank-1 driver object (the ground-truth
  object with the highest mean 1 − map over its pixels, `auditors.causes`) is the anchor, with a
  Wilson 95% interval;
- top_region_on_anchor: the stricter rule of `eagle-audit probe explain-eval`: the single region
  at the top of 1 − map lies mostly (more than half its pixels) on the anchor;
- the cause table (`hallucination_causes`), CHAIR, AMCR and CSR@10% of the caption corrections,
  forward passes and wall time per explanation.

    .venv/bin/python benchmarks/caption_causes.py --images 200 --seed 101 --regions 64 --pope --json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

PAIRS = {"star": "moon", "ring": "arrow"}


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float | None, float | None]:
    if n == 0:
        return None, None
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def explained(store: Any, run_id: str, world: Path) -> dict[str, Any]:
    """Per-explanation cause checks of one run, against the world's masks."""
    from PIL import Image

    gt = {r["image"]: r for r in json.loads((world / "ground_truth.json").read_text())["images"]}
    rows = store.query(
        """SELECT x.sample_id, x.target_position, x.map_path, x.map_sha256, x.drivers, x.forward_passes,
            x.wall_s, x.correction_area, x.corrected, m.object_class, a.image
        FROM explanations x
        JOIN marks m ON m.run_id = x.run_id AND m.sample_id = x.sample_id
            AND m.token_index = x.target_position AND m.label_set = x.label_set
        JOIN answers a ON a.run_id = x.run_id AND a.sample_id = x.sample_id
        WHERE x.run_id = ? AND x.method LIKE 'eagle-%' AND x.error IS NULL""",
        [run_id],
    ).to_pylist()
    checks = []
    for r in rows:
        anchor = PAIRS.get(r["object_class"])
        objects = {o["name"]: o["label"] for o in gt[r["image"]]["objects"]}
        if anchor is None or anchor not in objects:
            continue
        first = next((d["object"] for d in r["drivers"] or [] if d["rank"] == 1), None)
        amap = store.read_map(r["map_path"], r["map_sha256"])
        labels = np.asarray(Image.open(world / gt[r["image"]]["mask"]))
        top = amap == amap.min()  # the region ranked last scores 0: the top of 1 − map
        on_anchor = float((labels[top] == objects[anchor]).mean())
        checks.append(
            {
                "sample": r["sample_id"],
                "class": r["object_class"],
                "anchor_first": first == anchor,
                "first": first,
                "top_region_on_anchor": on_anchor > 0.5,
            }
        )
    all_rows = rows
    n = len(checks)
    k = sum(c["anchor_first"] for c in checks)
    strict = sum(c["top_region_on_anchor"] for c in checks)
    corr = [r for r in all_rows if r["correction_area"] is not None]
    return {
        "explanations": len(all_rows),
        "partner_hallucinations_with_anchor": n,
        "anchor_first": k / n if n else None,
        "anchor_first_ci95": wilson(k, n),
        "anchor_first_by_class": {
            cls: f"{sum(c['anchor_first'] for c in checks if c['class'] == cls)}/"
            f"{sum(c['class'] == cls for c in checks)}"
            for cls in PAIRS
        },
        "top_region_on_anchor": strict / n if n else None,
        "top_region_on_anchor_ci95": wilson(strict, n),
        "not_first": [c for c in checks if not c["anchor_first"]],
        "amcr": float(np.mean([r["correction_area"] for r in corr])) if corr else None,
        "csr10": float(np.mean([bool(r["corrected"]) and r["correction_area"] <= 0.1 + 1e-12 for r in corr]))
        if corr
        else None,
        "forward_passes_mean": float(np.mean([r["forward_passes"] for r in all_rows])) if all_rows else None,
        "wall_s_mean": float(np.mean([r["wall_s"] for r in all_rows])) if all_rows else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--seed", type=int, default=101)
    parser.add_argument("--regions", type=int, default=64)
    parser.add_argument("--pope", action="store_true", help="also audit POPE on the same world")
    parser.add_argument("--store", type=Path, default=None, help="keep the store here (default: a temp dir)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import torch

    from audit import AuditConfig, run_audit
    from storage.queries import EXAMPLES, run_named
    from storage.store import Store

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    root = args.store or Path(tempfile.mkdtemp(prefix="caption-causes-"))
    out: dict[str, Any] = {
        "machine": f"{platform.node()} ({os.cpu_count()} cores, shared)",
        "command": f"benchmarks/caption_causes.py --images {args.images} --seed {args.seed} "
        f"--regions {args.regions}{' --pope' if args.pope else ''}",
    }
    world_size = {"probe_images": args.images, "seed": args.seed, "regions": args.regions, "report": False}
    for benchmark in ["captions", *(["pope"] if args.pope else [])]:
        start = time.perf_counter()
        result = run_audit(AuditConfig(store=root, benchmark=benchmark, run_id=benchmark, **world_size))
        store = Store(root)
        world = next((root / "datasets").iterdir())
        found = explained(store, benchmark, world)
        con = store.connect()
        causes = run_named(con, EXAMPLES["hallucination_causes"], run_id=benchmark).to_pylist()
        con.close()
        out[benchmark] = {
            "items": result.questions,
            "marks": result.marks,
            "metrics": result.metrics,
            "wall_s": round(time.perf_counter() - start, 1),
            **found,
            "cause_table": [r for r in causes if r["ranked_first"]],
        }
    print(json.dumps(out, indent=None if args.json else 2, default=str))  # noqa: T201 - a benchmark prints its numbers


if __name__ == "__main__":
    main()
