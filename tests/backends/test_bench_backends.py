"""`bench_backends` on toy scorers: the modes alternate round by round, the concurrent mode really
makes several score calls at once, and agreement is counted against the in-process scores."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from eagle.types import ScoreRequest
from probe.agreement import ScoringCase, bench_backends, score_cases

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
    result = bench_backends(
        Toy("c", log, offset=1e-3), Toy("s", log), Toy("i", log), cases * 2, repeats=3, callers=1
    )
    # warm-up: one case per mode (the concurrent scorer twice: with all callers, then one caller);
    # then three rounds of (concurrent, concurrent with one caller, sequential, in-process), two cases each
    assert log == ["c", "c", "s", "i"] + (["c"] * 4 + ["s"] * 2 + ["i"] * 2) * 3
    assert result["prob_agreement"] == 1.0 and abs(result["max_abs_diff"] - 1e-3) < 1e-12
    assert result["server_concurrent_per_s"] > 0 and result["n_images"] == 8
    assert result["callers"] == 1 and result["server_concurrent_one_caller_per_s"] > 0

    far = bench_backends(Toy("c", [], offset=1e-2), Toy("s", []), Toy("i", []), cases, repeats=1)
    assert far["prob_agreement"] == 0.0


class Gate(Toy):
    """A scorer whose calls all wait at a barrier: it only finishes when `parties` calls overlap."""

    def __init__(self, parties: int, timeout: float = 10.0) -> None:
        super().__init__("g", [])
        self.barrier = threading.Barrier(parties, timeout=timeout)

    def score(self, images, request):
        self.barrier.wait()
        return super().score(images, request)


def test_callers_make_score_calls_at_once_and_keep_case_order():
    rng = np.random.default_rng(1)
    cases = [
        ScoringCase(images=rng.integers(0, 256, (2, 4, 4, 3), dtype=np.uint8), request=REQUEST)
        for _ in range(6)
    ]
    got = score_cases(Gate(3), cases, callers=3)  # three calls must be in flight together
    want = score_cases(Toy("t", []), cases)
    assert all(np.array_equal(g, w) for g, w in zip(got, want, strict=True))
    with pytest.raises(threading.BrokenBarrierError):
        score_cases(Gate(2, timeout=0.5), cases[:2], callers=1)  # one caller never overlaps calls
