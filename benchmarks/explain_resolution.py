"""Explanation time against input resolution, for the same forwards (the input path's cost).

One held-out probe scene, upscaled to 128, 336 and 512 px (bicubic), explained by EAGLE (efficient
search) on the shipped probe model in-process, over the same grid of regions (8x8 by default): the search, the
masks and therefore the forwards are the same at every size (checked: equal forward counts). What
grows with the size is the input path: composing masked images, the processor's resize to 128 px,
and its normalisation. Modes:

- `fast`: the verified shortcut (`eagle.backends.shared_prompt_inputs`): EAGLE describes each batch
  (image, label map, keep rows) to the backend (`MaskedScorer.score_masked`), which resizes the masked
  images from their regions (`eagle.backends.masked_resize`, Pillow's result bit for bit) without
  composing them at full size, then a table lookup;
- `processor`: composed full-size masked images through the processor per image (what a server
  backend's server does, and what every size but the processor's own got before issue 14).

Sizes and modes alternate round by round (a slow spell of the shared machine hits all of them);
the median time per setting is reported, its ratio to 128 px in the same mode, and the ratios to
the same round's 128 px run (paired).

Run: .venv/bin/python benchmarks/explain_resolution.py [--rounds 5] [--threads 2] [--grid 8]   (prints JSON)
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import numpy as np

SIZES = (128, 336, 512)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--scene", type=int, default=3)
    ap.add_argument("--grid", type=int, default=8, help="regions: a grid of N x N")
    args = ap.parse_args()

    import torch
    from PIL import Image

    from eagle import Eagle, EfficientSearch, GridSegmenter, ScoreRequest
    from eagle.backends.hf import HFBackend
    from probe.classes import question_text
    from probe.model import CHECKPOINT_DIR
    from probe.world import make_scene

    torch.set_num_threads(args.threads)
    backends = {mode: HFBackend(CHECKPOINT_DIR, fast_inputs=mode == "fast") for mode in ("fast", "processor")}
    scene = make_scene(4242, args.scene, "heldout")
    prompt = question_text(scene.objects[0].name)
    yes = backends["fast"].token_id("Yes")
    request = ScoreRequest(prompt=prompt, answer_ids=(yes,), target_positions=(0,), target_ids=(yes,))
    images = {s: np.asarray(Image.fromarray(scene.image).resize((s, s), Image.BICUBIC)) for s in SIZES}
    labels = {s: GridSegmenter(rows=args.grid, cols=args.grid).segment(images[s]) for s in SIZES}

    def explain(mode: str, size: int) -> tuple[float, int]:
        backend = backends[mode]
        before = backend.forward_passes
        start = time.perf_counter()
        Eagle(backend, search=EfficientSearch()).explain(images[size], labels[size], request)
        return time.perf_counter() - start, backend.forward_passes - before

    for mode in backends:  # warm-up: plans, allocator, first-batch shapes
        for size in SIZES:
            explain(mode, size)
    times: dict[tuple[str, int], list[float]] = {(m, s): [] for m in backends for s in SIZES}
    forwards: dict[tuple[str, int], int] = {}
    for _ in range(args.rounds):
        for mode in backends:
            for size in SIZES:
                seconds, n = explain(mode, size)
                times[(mode, size)].append(seconds)
                forwards[(mode, size)] = n
    if len(set(forwards.values())) != 1:
        raise SystemExit(f"forward counts differ between settings: {forwards}")
    for mode in backends:
        base = statistics.median(times[(mode, 128)])
        for size in SIZES:
            t = statistics.median(times[(mode, size)])
            # the same round's 128 px run: a slow spell of the shared machine hits both
            paired = [a / b for a, b in zip(times[(mode, size)], times[(mode, 128)], strict=True)]
            print(json.dumps({  # noqa: T201 (a benchmark script prints its numbers)
                "mode": mode, "size": size, "median_s": round(t, 4), "ratio_to_128": round(t / base, 3),
                "paired_ratios": [round(r, 3) for r in paired],
                "paired_median": round(statistics.median(paired), 3),
                "forwards": forwards[(mode, size)], "rounds": args.rounds, "threads": args.threads,
                "all_s": [round(x, 4) for x in times[(mode, size)]], "machine": platform.node(),
            }))  # fmt: skip


if __name__ == "__main__":
    main()
