"""Checking one backend against another on the probe world: masked-image scoring workloads,
probability agreement, and scoring throughput. Used by the integration tests and by
`eagle-audit bench backends`.

The workloads are seeded and built from held-out probe scenes (probe world imported lazily), with
token ids taken from a reference backend, so every backend scores exactly the same requests.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from eagle.types import Backend, GenerationRequest, LabelMap, RGBBatch, RGBImage, Scorer, ScoreRequest

AGREEMENT_TOL = 2e-3  # absolute difference in probability counted as agreement
WORKLOAD_SEED = 4242  # held-out scenes of this seed are used by no training or evaluation run


@dataclass(frozen=True, kw_only=True, slots=True)
class ScoringCase:
    """Masked variants of one probe image and the request scored on each."""

    images: RGBBatch  # (k, H, W, 3) uint8
    request: ScoreRequest


@dataclass(frozen=True, kw_only=True, slots=True)
class Agreement:
    n_values: int  # target probabilities compared
    n_images: int
    prob_agreement: float  # share of values within `tol`
    image_agreement: float  # share of images whose every target is within `tol`
    max_abs_diff: float
    tol: float


def grid_labels(h: int, w: int, rows: int = 4, cols: int = 4) -> LabelMap:
    """A rows x cols grid label map (H, W) int32."""
    r = np.minimum(np.arange(h) * rows // h, rows - 1)
    c = np.minimum(np.arange(w) * cols // w, cols - 1)
    return (r[:, None] * cols + c[None, :]).astype(np.int32)


def random_masks(image: RGBImage, k: int, rng: np.random.Generator, n_regions: int = 16) -> RGBBatch:
    """k masked variants (k, H, W, 3) of `image`: the full image, then random region subsets."""
    from eagle.masking import compose

    side = int(round(n_regions**0.5))
    labels = grid_labels(image.shape[0], image.shape[1], side, side)
    keep = rng.random((k, side * side)) < rng.uniform(0.2, 0.8, (k, 1))
    keep[0] = True
    return compose(image, labels, keep)


def scoring_cases(
    reference: Backend, n_variants: int = 200, n_scenes: int = 10, seed: int = WORKLOAD_SEED
) -> list[ScoringCase]:  # noqa: E501
    """`n_variants` masked images over `n_scenes` held-out scenes. Even scenes ask a yes/no question
    (targets: " Yes" and " No" at answer position 0); odd scenes ask for a caption and score its
    class-name tokens at every position of the reference caption plus one counter token."""
    from probe.classes import CAPTION_PROMPT, CLASS_NAMES, caption_text, question_text
    from probe.world import make_scene

    rng = np.random.default_rng(seed)
    per = [n_variants // n_scenes + (i < n_variants % n_scenes) for i in range(n_scenes)]
    yes, no = reference.token_id("Yes"), reference.token_id("No")
    cases = []
    for i, k in enumerate(per):
        scene = make_scene(seed, i, split="heldout")
        names = [o.name for o in scene.objects]
        if i % 2 == 0:
            prompt = question_text(names[0])
            answer = (yes,)
            request = ScoreRequest(
                prompt=prompt, answer_ids=answer, target_positions=(0, 0), target_ids=(yes, no)
            )
        else:
            prompt = CAPTION_PROMPT
            answer = reference.answer_token_ids(prompt, caption_text(names))
            # counter token: an absent class name where the first class name stands
            absent = next(c for c in CLASS_NAMES if c not in names)
            first = reference.token_id(names[0])
            at = answer.index(first) if first in answer else 0
            request = ScoreRequest(
                prompt=prompt,
                answer_ids=answer,
                target_positions=tuple(range(len(answer))) + (at,),
                target_ids=answer + (reference.token_id(absent),),
            )
        cases.append(ScoringCase(images=random_masks(scene.image, k, rng), request=request))
    return cases


def generation_requests(
    n: int = 300, seed: int = WORKLOAD_SEED, n_captions: int = 30
) -> list[GenerationRequest]:  # noqa: E501
    """`n` probe questions on held-out scenes: yes/no questions about present and absent classes,
    and `n_captions` caption prompts."""
    from probe.classes import CAPTION_PROMPT, CLASS_NAMES, question_text
    from probe.world import make_scene

    rng = np.random.default_rng(seed + 1)
    out = []
    for i in range(n):
        scene = make_scene(seed + 1, i, split="heldout")
        if i < n_captions:
            out.append(GenerationRequest(image=scene.image, prompt=CAPTION_PROMPT, max_new_tokens=32,
                                         request_id=f"caption-{i}"))  # fmt: skip
            continue
        present = [o.name for o in scene.objects]
        name = present[0] if rng.random() < 0.5 else str(rng.choice(CLASS_NAMES))
        out.append(GenerationRequest(image=scene.image, prompt=question_text(name), max_new_tokens=4,
                                     request_id=f"q-{i}"))  # fmt: skip
    return out


def score_cases(scorer: Scorer, cases: Sequence[ScoringCase], callers: int = 1) -> list[np.ndarray]:
    """Each case's scores, in case order. With `callers` > 1, that many `score` calls run at once from
    threads, as the audit flow's parallel explanations (`--explain-concurrency`) call one backend."""

    def one(case: ScoringCase) -> np.ndarray:
        return np.asarray(scorer.score(case.images, case.request), np.float64)

    if callers <= 1:
        return [one(c) for c in cases]
    with ThreadPoolExecutor(max_workers=callers) as pool:
        return list(pool.map(one, cases))


def agreement(a: Sequence[np.ndarray], b: Sequence[np.ndarray], tol: float = AGREEMENT_TOL) -> Agreement:
    """Compare per-case score matrices (k, N) of two backends."""
    if len(a) != len(b) or any(x.shape != y.shape for x, y in zip(a, b, strict=True)):
        raise ValueError(f"score shapes differ: {[x.shape for x in a]} vs {[y.shape for y in b]}")
    diffs = [np.abs(x - y) for x, y in zip(a, b, strict=True)]
    flat = np.concatenate([d.ravel() for d in diffs])
    per_image = np.concatenate([d.max(axis=1) for d in diffs])
    return Agreement(
        n_values=int(flat.size),
        n_images=int(per_image.size),
        prob_agreement=float(np.mean(flat <= tol)),
        image_agreement=float(np.mean(per_image <= tol)),
        max_abs_diff=float(flat.max()),
        tol=tol,
    )


def bench_cases(
    reference: Backend, n_images: int = 256, per_case: int = 32, seed: int = WORKLOAD_SEED
) -> list[ScoringCase]:
    """EAGLE's common request: masked variants of held-out scenes, `per_case` per scene (one score
    call, about one search step: the efficient search at 64 regions sends 16-20 images per step,
    128 in its first), each scored for the answer token of a yes/no question."""
    from probe.classes import question_text
    from probe.world import make_scene

    rng = np.random.default_rng(seed + 2)
    yes = reference.token_id("Yes")
    n_scenes = max(1, -(-n_images // per_case))
    per = [n_images // n_scenes + (i < n_images % n_scenes) for i in range(n_scenes)]
    cases = []
    for i, k in enumerate(per):
        scene = make_scene(seed + 2, i, split="heldout")
        request = ScoreRequest(prompt=question_text(scene.objects[0].name), answer_ids=(yes,),
                               target_positions=(0,), target_ids=(yes,))  # fmt: skip
        cases.append(ScoringCase(images=random_masks(scene.image, k, rng), request=request))
    return cases


def bench_backends(
    concurrent: Scorer,
    sequential: Scorer,
    inprocess: Scorer,
    cases: Sequence[ScoringCase],
    repeats: int = 2,
    callers: int = 4,
) -> dict[str, float]:
    """Masked images per second through a server with bounded concurrency, the same server one
    request at a time, and in-process scoring (best of `repeats` alternating rounds, after one
    warm-up case each), plus how well the server's probabilities agree with in-process ones.

    The concurrent server is measured as an audit uses it: `callers` score calls at once (parallel
    explanations), all sharing the backend's bound on requests in flight; and, for comparison, with
    one score call at a time, where one EAGLE step's images are all that can be in flight.
    """
    modes = {
        "concurrent": (concurrent, callers),
        "concurrent_one_caller": (concurrent, 1),
        "sequential": (sequential, 1),
        "inprocess": (inprocess, 1),
    }
    for scorer, _ in modes.values():
        score_cases(scorer, cases[:1])  # warm-up at full width: connections, caches, new batch shapes
    best = dict.fromkeys(modes, float("inf"))
    scores: dict[str, list[np.ndarray]] = {}
    for _ in range(repeats):  # alternate, so a slow spell of a shared machine hits every mode
        for name, (scorer, n_callers) in modes.items():
            t0 = time.perf_counter()
            scores[name] = score_cases(scorer, cases, callers=n_callers)
            best[name] = min(best[name], time.perf_counter() - t0)
    n = sum(c.images.shape[0] for c in cases)
    rate = {name: n / seconds for name, seconds in best.items()}
    agree = agreement(scores["concurrent"], scores["inprocess"])
    return {
        "server_concurrent_per_s": rate["concurrent"],
        "server_sequential_per_s": rate["sequential"],
        "inprocess_per_s": rate["inprocess"],
        "concurrency_speedup": rate["concurrent"] / rate["sequential"],
        "server_concurrent_one_caller_per_s": rate["concurrent_one_caller"],
        "one_caller_speedup": rate["concurrent_one_caller"] / rate["sequential"],
        "callers": callers,
        "prob_agreement": agree.prob_agreement,
        "max_abs_diff": agree.max_abs_diff,
        "n_images": agree.n_images,
        "tol": agree.tol,
    }
