"""`bench_backends` on toy scorers: the modes alternate round by round, and agreement is counted
against the in-process scores."""

from __future__ import annotations

import numpy as np

from eagle.backends.agreement import ScoringCase, bench_backends
from eagle.types import ScoreRequest

REQUEST = ScoreRequest(prompt="q", answer_ids=(7,), target_positions=(0,), target_ids=(7,))


class Toy:
    """Scores each image by its mean brightness, plus `offset`; logs its name on every call."""

    def __init__(self, name: str, log: list[str], offset: float = 0.0) -> None:
        self.name, self.log, self.offset = name, log, offset

    def score(self, images, request):
        self.log.append(self.name)
        return images.reshape(len(images), -1).mean(axis=1, keepdims=True) / 255.0 + self.offset


def test_modes_alternate_and_agreement_counts_values_within_the_tolerance():
    rng = np.random.default_rng(0)
    cases = [ScoringCase(images=rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8), request=REQUEST)]
    log: list[str] = []
    result = bench_backends(Toy("c", log, offset=1e-3), Toy("s", log), Toy("i", log), cases * 2, repeats=3)
    # one warm-up case each, then three rounds of (concurrent, sequential, in-process), two cases each
    assert log == ["c", "s", "i"] + (["c"] * 2 + ["s"] * 2 + ["i"] * 2) * 3
    assert result["prob_agreement"] == 1.0 and abs(result["max_abs_diff"] - 1e-3) < 1e-12
    assert result["server_concurrent_per_s"] > 0 and result["n_images"] == 8

    far = bench_backends(Toy("c", [], offset=1e-2), Toy("s", []), Toy("i", []), cases, repeats=1)
    assert far["prob_agreement"] == 0.0
