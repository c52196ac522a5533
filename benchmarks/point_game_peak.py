"""Where the peak of EAGLE's map lands on hard probe-suite object samples (issue 15, point game).

The peak of an EAGLE map is the first region of its order, and the exact, lazy and efficient
searches all take it from the same first step: every region scored shown alone and removed alone
(2n forwards). So the point game of those searches can be measured on many samples at 2n forwards
each. Prints one JSON line per sample (peak on the asked class's boxes? on the same-colour
distractor? the best single-region "Yes" probability on each; the objective gap between the peak
and the best region on the box) and a summary line.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/point_game_peak.py --seed 1 --n 30

Samples are chosen as `eagle-audit probe compare` chooses them (kinds copies and large in turn, a
scene counts when the model's first answer token is "Yes").
"""

from __future__ import annotations

import json

import numpy as np
from hard_suite_args import parser, probe_backend, say

from eagle import SlicoSegmenter
from eagle.scoring import RegionScorer, objective
from eagle.types import GenerationRequest, ScoreRequest


def main() -> None:
    from probe.classes import question_text
    from probe.suite import DISTRACTOR, make_hard_scene

    ap = parser(__doc__, 30, "scenes scanned (copies and large in turn)")
    args = ap.parse_args()
    backend = probe_backend()
    yes = backend.token_id("Yes")
    seg = SlicoSegmenter(n_segments=args.regions)
    records = []
    for idx in range(args.n):
        kind = ("copies", "large")[idx % 2]
        hs = make_hard_scene(args.seed, idx, kind)
        image, q = hs.scene.image, question_text(hs.target)
        answer = backend.generate([GenerationRequest(image=image, prompt=q, max_new_tokens=3)])[0]
        if answer.token_ids[0] != yes:
            continue
        req = ScoreRequest(prompt=q, answer_ids=answer.token_ids, target_positions=(0,), target_ids=(yes,))
        labels = seg.segment(image)
        n = int(labels.max()) + 1
        rs = RegionScorer(backend, image, labels, req, n_regions=n)
        alone = np.eye(n, dtype=bool)
        scores = rs(np.concatenate([alone, ~alone]))
        ins, dels = scores[:n], scores[n:]
        f = objective(ins, dels, 1.0, 1.0)
        peak = int(np.argmax(f))  # the exact search's first pick (ties: lowest id)
        box, distractor = hs.box(hs.target), hs.mask(DISTRACTOR)
        on_box = [r for r in range(n) if box[labels == r].mean() > 0.5]
        on_dis = [r for r in range(n) if distractor[labels == r].mean() > 0.5]
        rec = {
            "sample": f"s{args.seed}-{kind}-{idx}",
            "has_distractor": bool(distractor.any()),
            "peak_on_box": peak in on_box,
            "peak_on_distractor": peak in on_dis,
            "best_yes_alone_box": float(ins[on_box, 0].max()) if on_box else None,
            "best_yes_alone_distractor": float(ins[on_dis, 0].max()) if on_dis else None,
            "objective_gap_to_box": float(f[peak] - f[on_box].max()) if on_box else None,
        }
        records.append(rec)
        say(json.dumps(rec))
    hits = sum(r["peak_on_box"] for r in records)
    say(
        json.dumps(
            {
                "seed": args.seed,
                "samples": len(records),
                "peak_on_box": hits,
                "peak_on_distractor": sum(r["peak_on_distractor"] for r in records),
                "with_distractor": sum(r["has_distractor"] for r in records),
                "point_game_box": hits / max(len(records), 1),
            }
        )
    )


if __name__ == "__main__":
    main()
