"""How `--limit N` keeps the splits balanced: the RePOPE and POPE label yes-ratio per split of the
real annotation files, of the first N unique questions (what `--limit` did before), and of the
stratified sample (`audit.sampling`) for several seeds. Counts only: no model, no timing.

    .venv/bin/python benchmarks/sampling_balance.py --annotations ../shared/data/repope --limit 200
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from audit.config import AuditConfig
from audit.data import load_items, prepare_data
from auditors.annotations import SPLITS


def yes_ratios(items, label_set: str) -> dict[str, tuple[float, int]]:
    """split -> (share of chosen questions labelled yes, questions)."""
    out = {}
    for split in SPLITS:
        labels = [s.labels.get(label_set) for item in items for s in item.samples if s.split == split]
        labels = [label for label in labels if label is not None]
        out[split] = (
            sum(label == "yes" for label in labels) / len(labels) if labels else float("nan"),
            len(labels),
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annotations", type=Path, default=Path("../shared/data/repope"))
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:

        def load(**kw):
            config = AuditConfig(
                store=Path(tmp) / "store",
                dataset="repope",
                annotations=args.annotations,
                images=Path(tmp),
                **kw,
            )
            return load_items(config, prepare_data(config))[2]

        everything = load()
        # the old --limit: the first N unique pairs in the benchmark's order (split, then question
        # id), with every split each of them occurs in
        first = everything[: args.limit]
        rows = {"all questions": everything, f"first {args.limit} unique (old --limit)": first}
        for seed in args.seeds:
            rows[f"stratified {args.limit}, seed {seed}"] = load(limit=args.limit, sample_seed=seed)
    result = {
        name: {ls: yes_ratios(samples, ls) for ls in ("repope", "pope")} | {"pairs asked": len(samples)}
        for name, samples in rows.items()
    }
    if args.json:
        lines = [json.dumps(result)]
    else:
        lines = [
            f"| selection | pairs asked | {' | '.join(f'RePOPE yes-ratio {s} (n)' for s in SPLITS)} |",
            "|---|---|" + "---|" * len(SPLITS),
        ]
        for name, r in result.items():
            cells = [f"{r['repope'][s][0]:.3f} ({r['repope'][s][1]})" for s in SPLITS]
            lines.append(f"| {name} | {r['pairs asked']} | {' | '.join(cells)} |")
    print("\n".join(lines))  # noqa: T201 - a benchmark prints its numbers


if __name__ == "__main__":
    main()
