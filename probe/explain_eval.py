"""Faithfulness and hallucination-diagnosis evaluation on fresh probe-world scenes: EAGLE and the
three baselines run on the same samples, regions, targets and scorer, in one run.

Samples (heldout split, seed `seed`):
* object samples: scene i, a seeded choice of one of its objects X, "Is there a X in the image?";
  when the model answers yes, its "Yes" token is explained; point game against X's box and mask.
* planted hallucinations: scenes that hold a planted A (moon, arrow) but not its partner B; when
  the model answers "Yes" to "Is there a B ...?", the counter token "No" is explained. The
  hallucination-driving region is the 1 − map maximum (the last region of the order); a cause hit
  is that region lying mostly (more than half its pixels) on A's visible mask; `cause_hit_rate_box`
  asks the same of A's box, and `cause_touch_rate` (a looser diagnostic) only that the region
  touches A's mask (within 2 px). The correction scan regenerates the answer with low-ranked
  regions removed (AMCR, CSR@10%).

The probe package is imported inside functions only: eagle never needs it at import time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from skimage.morphology import diamond, dilation

from auditors.parsing import parse_yes_no
from eagle.baselines import ablation, random_order, rise
from eagle.correction import Correction, amcr, correction_scan, csr
from eagle.explanation import Explanation
from eagle.method import Eagle
from eagle.metrics import deletion_auc, energy_point_game, insertion_auc, point_game, region_on
from eagle.regions import SlicoSegmenter
from eagle.search import DEFAULT_SEARCH, Search, search_by_name
from eagle.types import ScoreRequest

log = logging.getLogger(__name__)

METHODS = ("eagle", "random", "ablation", "rise")
HALLUCINATION_START = 1_000_000  # scene indices for hallucination samples, apart from object samples


@dataclass(frozen=True, kw_only=True, slots=True)
class EvalConfig:
    seed: int = 0
    n: int = 50  # object samples, and at most this many planted hallucinations
    regions: int = 64  # SLICO division number
    search: Search = field(default_factory=lambda: search_by_name(DEFAULT_SEARCH))
    rise_masks: int = 256
    max_scan: int = 40  # scan at most max_scan * n scenes looking for samples
    batch_size: int | None = None


def says_no(answer: str) -> bool:
    """The correction scan's test: the project's one yes/no parser reads a "no"."""
    return parse_yes_no(answer) == "no"


def _methods(backend, cfg: EvalConfig, sample_seed: int) -> dict[str, Callable]:
    eagle = Eagle(backend, search=cfg.search, batch_size=cfg.batch_size)
    bs = cfg.batch_size
    return {
        "eagle": lambda im, lab, req: eagle.explain(im, lab, req),
        "random": lambda im, lab, req: random_order(backend, im, lab, req, seed=sample_seed, batch_size=bs),
        "ablation": lambda im, lab, req: ablation(backend, im, lab, req, batch_size=bs),
        "rise": lambda im, lab, req: rise(
            backend, im, lab, req, n_masks=cfg.rise_masks, seed=sample_seed, batch_size=bs
        ),
    }


def _by(rows: list[dict], key: str, value: str) -> dict[str, dict]:
    """Mean of `value` and the count, per distinct `key`."""
    groups: dict[str, list[float]] = {}
    for row in rows:
        groups.setdefault(row[key], []).append(row[value])
    return {k: {"rate": float(np.mean(v)), "n": len(v)} for k, v in sorted(groups.items())}


def _answer(backend, image: np.ndarray, question: str):
    from eagle.types import GenerationRequest

    return backend.generate([GenerationRequest(image=image, prompt=question, max_new_tokens=3)])[0]


def evaluate(backend, cfg: EvalConfig, progress: bool = False) -> dict:
    """Run the evaluation; returns {"n", "seed", "methods": {method: metrics}, ...} (JSON-safe)."""
    from tqdm import tqdm

    from probe.classes import PLANTED_PAIRS, question_text
    from probe.world import make_scene

    start = time.perf_counter()
    segmenter = SlicoSegmenter(n_segments=cfg.regions)
    yes_id, no_id = backend.token_id("Yes"), backend.token_id("No")
    rows: dict[str, list[dict]] = {m: [] for m in METHODS}
    skipped = {"object_answered_no": 0, "object_unparsed": 0}

    # ---- object samples ----------------------------------------------------------------
    bar = tqdm(total=cfg.n, desc="object samples", disable=not progress, leave=False)
    index = 0
    while len(rows["eagle"]) < cfg.n and index < cfg.max_scan * cfg.n:
        scene = make_scene(cfg.seed, index, "heldout")
        rng = np.random.default_rng([cfg.seed, index, 17])
        obj = scene.objects[int(rng.integers(len(scene.objects)))]
        index += 1
        question = question_text(obj.name)
        answer = _answer(backend, scene.image, question)
        verdict = parse_yes_no(answer.text)
        if verdict != "yes":
            skipped["object_answered_no" if verdict == "no" else "object_unparsed"] += 1
            continue
        if answer.token_ids[0] != yes_id:
            skipped["object_unparsed"] += 1
            continue
        request = ScoreRequest(
            prompt=question, answer_ids=answer.token_ids, target_positions=(0,), target_ids=(yes_id,)
        )
        labels = segmenter.segment(scene.image)
        mask = scene.labels == obj.label
        for name, run in _methods(backend, cfg, index).items():
            e: Explanation = run(scene.image, labels, request)
            amap = e.attribution_map
            rows[name].append(
                {
                    "insertion_auc": insertion_auc(e),
                    "deletion_auc": deletion_auc(e),
                    "point_game_box": float(point_game(amap, obj.box)),
                    "point_game_mask": float(point_game(amap, mask)),
                    "energy_box": energy_point_game(amap, obj.box),
                    "class": obj.name,
                    "forward_passes": e.forward_passes,
                    "wall_time_s": e.wall_time_s,
                }
            )
        bar.update(1)
    bar.close()

    # ---- planted hallucinations ----------------------------------------------------------
    hall: dict[str, list[dict]] = {m: [] for m in METHODS}
    scanned = candidates = 0
    bar = tqdm(total=cfg.n, desc="planted hallucinations", disable=not progress, leave=False)
    index = HALLUCINATION_START
    while len(hall["eagle"]) < cfg.n and scanned < cfg.max_scan * cfg.n:
        scene = make_scene(cfg.seed, index, "heldout")
        index += 1
        scanned += 1
        pair = next(((a, b) for a, b in PLANTED_PAIRS if a in scene.names and b not in scene.names), None)
        if pair is None:
            continue
        candidates += 1
        a, b = pair
        question = question_text(b)
        answer = _answer(backend, scene.image, question)
        if parse_yes_no(answer.text) != "yes":
            continue
        request = ScoreRequest(
            prompt=question, answer_ids=answer.token_ids, target_positions=(0,), target_ids=(no_id,)
        )
        labels = segmenter.segment(scene.image)
        a_mask = scene.mask(a)
        a_box = next(o.box for o in scene.objects if o.name == a)
        near_a = dilation(a_mask, diamond(2))  # within 2 px (4-neighbourhood steps) of A

        def regenerate(images, question=question):
            return backend.answer_images(images, question, max_new_tokens=3)

        for name, run in _methods(backend, cfg, index).items():
            e = run(scene.image, labels, request)
            driver = int(e.order[-1])  # the 1 − map maximum (ties: the last-ranked region)
            corr: Correction = correction_scan(scene.image, labels, e.order, regenerate, says_no)
            hall[name].append(
                {
                    "cause_hit": float(region_on(labels, driver, a_mask)),
                    "cause_hit_box": float(region_on(labels, driver, a_box)),
                    "cause_touch": float(bool(near_a[labels == driver].any())),
                    "pair": f"{a}->{b}",
                    "correction": corr,
                    "forward_passes": e.forward_passes,
                }
            )
        bar.update(1)
    bar.close()

    methods: dict[str, dict] = {}
    for name in METHODS:
        r, h = rows[name], hall[name]
        out: dict = {
            key: (float(np.mean([x[key] for x in r])) if r else None)
            for key in (
                "insertion_auc",
                "deletion_auc",
                "point_game_box",
                "point_game_mask",
                "energy_box",
                "forward_passes",
                "wall_time_s",
            )
        }
        corrections = [x["correction"] for x in h]
        out.update(
            {
                "amcr": amcr(corrections) if h else None,
                "csr10": csr(corrections, 0.10) if h else None,
                "cause_hit_rate": float(np.mean([x["cause_hit"] for x in h])) if h else None,
                "cause_hit_rate_box": float(np.mean([x["cause_hit_box"] for x in h])) if h else None,
                "cause_touch_rate": float(np.mean([x["cause_touch"] for x in h])) if h else None,
                "n_hallucinations": len(h),
                "cause_hit_rate_by_pair": _by(h, "pair", "cause_hit"),
                "point_game_box_by_class": _by(r, "class", "point_game_box"),
                "n_samples": len(r),
            }
        )
        methods[name] = out
    return {
        "n": cfg.n,
        "seed": cfg.seed,
        "methods": methods,
        "n_object_samples": len(rows["eagle"]),
        "skipped_object_samples": skipped,
        "hallucination_scan": {
            "scenes": scanned,
            "planted_a_without_b": candidates,
            "said_yes": len(hall["eagle"]),
        },
        "regions": cfg.regions,
        "search": cfg.search.params(),
        "rise_masks": cfg.rise_masks,
        "model_id": getattr(backend, "model_id", type(backend).__name__),
        "wall_time_s": time.perf_counter() - start,
    }
