"""Benchmarks behind `eagle-audit bench`: scoring throughput (batched vs one image per forward)
and search cost (exact vs efficient) on probe scenes. They return plain dicts of numbers."""

from __future__ import annotations

import time

import numpy as np

from eagle.masking import compose
from eagle.method import Eagle
from eagle.metrics import insertion_auc
from eagle.regions import SlicoSegmenter
from eagle.search import EfficientSearch, ExactSearch
from eagle.types import ScoreRequest


def _probe_sample(backend, seed: int, index: int):
    from probe.classes import question_text
    from probe.world import make_scene

    scene = make_scene(seed, index, "heldout")
    obj = max(scene.objects, key=lambda o: o.area)
    question = question_text(obj.name)
    yes = backend.token_id("Yes")
    request = ScoreRequest(prompt=question, answer_ids=(yes,), target_positions=(0,), target_ids=(yes,))
    return scene, request


def bench_scoring(
    backend_factory, *, n_images: int = 128, regions: int = 64, seed: int = 0, repeats: int = 3
) -> dict:
    """Images/s of batched scoring (automatic batch size) and of one image per forward, on the
    same masked probe images, alternating the two modes `repeats` times (best rate kept)."""
    batched = backend_factory(batch_size=None)
    sequential = backend_factory(batch_size=1)
    scene, request = _probe_sample(batched, seed, 0)
    labels = SlicoSegmenter(n_segments=regions).segment(scene.image)
    keep = np.random.default_rng(seed).random((n_images, int(labels.max()) + 1)) < 0.5
    images = compose(scene.image, labels, keep)
    batched.score(images[:8], request)  # warm-up
    sequential.score(images[:8], request)
    rates: dict[str, list[float]] = {"batched": [], "sequential": []}
    results = {}
    for _ in range(repeats):
        for name, backend in (("batched", batched), ("sequential", sequential)):
            start = time.perf_counter()
            results[name] = backend.score(images, request)
            rates[name].append(n_images / (time.perf_counter() - start))
    b, s = max(rates["batched"]), max(rates["sequential"])
    return {
        "batched_per_s": b,
        "sequential_per_s": s,
        "ratio": b / s,
        "n_images": n_images,
        "auto_batch_size": batched.auto_batch_size(_seq_len(batched, request)),
        "max_abs_diff": float(np.abs(results["batched"] - results["sequential"]).max()),
    }


def _seq_len(backend, request) -> int:
    text = backend.prompt_text(request.prompt)
    return len(backend.processor(text=[text], images=[np.zeros((8, 8, 3), np.uint8)])["input_ids"][0]) + 1


def bench_search(
    backend, *, regions: int = 64, n_samples: int = 3, seed: int = 0, efficient: EfficientSearch | None = None
) -> dict:
    """Mean forward passes and insertion AUC of the exact and the efficient search on the same
    probe samples (the question about each scene's largest object, target "Yes")."""
    efficient = efficient or EfficientSearch()
    rows = []
    for index in range(n_samples):
        scene, request = _probe_sample(backend, seed, index)
        labels = SlicoSegmenter(n_segments=regions).segment(scene.image)
        ex = Eagle(backend, search=ExactSearch()).explain(scene.image, labels, request)
        ef = Eagle(backend, search=efficient).explain(scene.image, labels, request)
        rows.append(
            (
                ex.forward_passes,
                ef.forward_passes,
                insertion_auc(ex),
                insertion_auc(ef),
                ex.n_regions,
                ex.wall_time_s,
                ef.wall_time_s,
            )
        )
    a = np.array(rows, dtype=np.float64)
    return {
        "exact_forwards": float(a[:, 0].mean()),
        "efficient_forwards": float(a[:, 1].mean()),
        "forward_ratio": float(a[:, 1].sum() / a[:, 0].sum()),
        "exact_insertion_auc": float(a[:, 2].mean()),
        "efficient_insertion_auc": float(a[:, 3].mean()),
        "auc_relative_diff": float((a[:, 3].mean() - a[:, 2].mean()) / max(a[:, 2].mean(), 1e-12)),
        "mean_regions": float(a[:, 4].mean()),
        "exact_wall_s": float(a[:, 5].mean()),
        "efficient_wall_s": float(a[:, 6].mean()),
        "n_samples": n_samples,
        "efficient_params": efficient.params(),
    }
