"""Peak memory of an EAGLE explanation on a 1024x1024 image as the region count n grows.

The scorer is a cheap analytic one (it reads one pixel per region), so the numbers are the
method's own memory: composing masked images per chunk in uint8 means the peak follows the chunk
size (images per scorer call), not n·H·W. For comparison, n full-size float32 RGB masks (what the
research code built, twice) would take n·H·W·3·4 bytes.

Run: .venv/bin/python benchmarks/eagle_memory.py   (prints one JSON line per setting)
"""

from __future__ import annotations

import json
import platform
import time
import tracemalloc

import numpy as np

from eagle import Eagle, EfficientSearch, ExactSearch, GridSegmenter, ScoreRequest, SlicoSegmenter

SIZE = 1024


class PixelProbeScorer:
    """f = sigmoid(w · visible - 2), visibility read from one pixel per region."""

    def __init__(self, labels: np.ndarray, seed: int = 0) -> None:
        n = int(labels.max()) + 1
        flat = labels.ravel()
        first = np.full(n, -1)
        first[flat[::-1]] = np.arange(flat.size)[::-1]  # first pixel index of each region
        self.ys, self.xs = np.unravel_index(first, labels.shape)
        self.w = np.random.default_rng(seed).normal(0, 4 / np.sqrt(n), n) + 4 / n

    def score(self, images, request):
        visible = images[:, self.ys, self.xs].max(-1) > 0  # (B, n)
        p = 1 / (1 + np.exp(-(visible @ self.w * 4 - 2)))
        return np.repeat(p[:, None], request.n_targets, axis=1)


def main() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(1, 256, (SIZE, SIZE, 3), dtype=np.uint8)  # no black pixel, so visibility reads true
    request = ScoreRequest(prompt="p", answer_ids=(1,), target_positions=(0,), target_ids=(1,))
    settings = [
        ("slico", 64, ExactSearch(), 16),
        ("slico", 64, EfficientSearch(), 16),
        ("slico", 64, EfficientSearch(), None),
    ]
    settings += [("grid", n, EfficientSearch(), 16) for n in (16, 64, 256)]
    settings += [("grid", n, ExactSearch(), 16) for n in (16, 64)]
    for segmenter, n, search, batch in settings:
        seg = (
            SlicoSegmenter(n_segments=n)
            if segmenter == "slico"
            else GridSegmenter(rows=int(np.sqrt(n)), cols=int(np.sqrt(n)))
        )
        labels = seg.segment(image)
        scorer = PixelProbeScorer(labels)
        tracemalloc.start()
        start = time.perf_counter()
        expl = Eagle(scorer, search=search, batch_size=batch).explain(image, labels, request)
        wall = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(  # noqa: T201 (a benchmark script prints its numbers)
            json.dumps(
                {
                    "segmenter": segmenter,
                    "regions": expl.n_regions,
                    "search": search.name,
                    "batch_size": batch,
                    "forward_passes": expl.forward_passes,
                    "peak_mib": round(peak / 2**20, 1),
                    "naive_float_masks_mib": round(expl.n_regions * SIZE * SIZE * 3 * 4 / 2**20, 1),
                    "wall_s": round(wall, 1),
                    "machine": platform.processor() or platform.machine(),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
