"""Attribution methods side by side on the hard probe suite, at matched forward budgets, with
paired bootstrap confidence intervals of their differences.

Every method explains the same samples with the same SLICO regions, targets and scorer, in one run:
* object samples (`probe.suite` kinds "copies" and "large"): "Is there a X?", the model's "Yes"
  explained; point game against the union of X's boxes and masks (any copy counts), and
  `top_on_distractor`: the map's peak lies on the same-colour ellipse (the usual point-game miss:
  the probe model answers "Yes" to that colour blob shown alone; benchmarks/RESULTS.md, issue 15).
* planted hallucinations (kind "planted"): the anchor A without its partner B; when the model says
  "Yes" to B the counter token "No" is explained. Cause hit: the region ranked last lies mostly on
  an A; the correction scan gives AMCR and CSR@10%.

Method names: ``eagle-exact``, ``eagle-lazy``, ``eagle-efficient``; ``random``, ``ablation``;
captum's ``feature_ablation`` and ``occlusion`` (fixed cost); and budgeted ones written
``NAME@BUDGET`` (NAME in ``rise``, ``shapley_sampling``, ``kernel_shap``, ``lime``), where BUDGET is
a number of forwards or the name of an EAGLE search in the same run (``kernel_shap@exact``): then
the method gets, on every sample, exactly the forwards that search spent on that sample.

The probe package and captum are benchmark code: eagle never imports them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from auditors.parsing import parse_yes_no
from eagle.baselines import ablation, random_order, rise
from eagle.correction import correction_scan
from eagle.explanation import Explanation
from eagle.method import Eagle
from eagle.metrics import deletion_auc, energy_point_game, insertion_auc, point_game, region_on
from eagle.regions import SlicoSegmenter
from eagle.search import search_by_name
from eagle.types import GenerationRequest, ScoreRequest
from probe.explain_eval import says_no

log = logging.getLogger(__name__)

BUDGETED = ("rise", "shapley_sampling", "kernel_shap", "lime")
FIXED = ("random", "ablation", "feature_ablation", "occlusion")
DEFAULT_METHODS = (
    "eagle-exact",
    "eagle-lazy",
    "kernel_shap@exact",
    "lime@exact",
    "shapley_sampling@exact",
    "rise@exact",
    "kernel_shap@lazy",
    "lime@lazy",
    "shapley_sampling@lazy",
    "rise@lazy",
    "feature_ablation",
    "occlusion",
)
OBJECT_METRICS = (
    "insertion_auc",
    "deletion_auc",
    "point_game_box",
    "point_game_mask",
    "energy_mask",
    "top_on_distractor",
)
HALLUCINATION_METRICS = ("cause_hit", "correction_area", "csr10")
LOWER_IS_BETTER = frozenset({"deletion_auc", "correction_area"})


@dataclass(frozen=True, kw_only=True, slots=True)
class CompareConfig:
    seed: int = 1
    n: int = 30  # object samples
    n_hallucinations: int = 20
    regions: int = 64
    kinds: tuple[str, ...] = ("copies", "large")
    methods: tuple[str, ...] = DEFAULT_METHODS
    max_scan: int = 20  # scan at most max_scan * n scenes per sample type
    bootstrap: int = 5000
    batch_size: int | None = None
    extra: dict = field(default_factory=dict)


def parse_method(name: str) -> tuple[str, str | int | None]:
    """'kernel_shap@exact' -> ('kernel_shap', 'exact'); '@416' -> 416; no '@' -> None."""
    base, _, budget = name.partition("@")
    if base.startswith("eagle-"):
        search_by_name(base.removeprefix("eagle-"))  # raises on an unknown search
        return base, None
    if base in FIXED and not budget:
        return base, None
    if base in BUDGETED and budget:
        return base, int(budget) if budget.isdigit() else budget
    raise ValueError(
        f"unknown method {name!r}: use eagle-<search>, one of {', '.join(FIXED)}, or NAME@BUDGET "
        f"with NAME in "
        f"{', '.join(BUDGETED)} and BUDGET a number of forwards or an EAGLE search of the same run"
    )


def check_methods(methods: Sequence[str]) -> None:
    """Every name parses and every NAME@SEARCH budget has its EAGLE search in the list."""
    eagles = {m.removeprefix("eagle-") for m in methods if m.startswith("eagle-")}
    for m in methods:
        _, budget = parse_method(m)
        if isinstance(budget, str) and budget not in eagles:
            raise ValueError(f"{m} takes its budget from eagle-{budget}; add eagle-{budget} to the methods")


def _run_methods(backend, image, labels, request, methods: Sequence[str], seed: int, batch_size) -> dict:
    """Explanations of every method, EAGLE searches first (their forwards set the budgets)."""
    from probe.captum_methods import captum_explain

    out: dict[str, Explanation] = {}
    for m in sorted(methods, key=lambda m: not m.startswith("eagle-")):
        base, budget = parse_method(m)
        if base.startswith("eagle-"):
            search = search_by_name(base.removeprefix("eagle-"))
            out[m] = Eagle(backend, search=search, batch_size=batch_size).explain(image, labels, request)
            continue
        if isinstance(budget, str):
            budget = out[f"eagle-{budget}"].forward_passes
        if base == "random":
            out[m] = random_order(backend, image, labels, request, seed=seed, batch_size=batch_size)
        elif base == "ablation":
            out[m] = ablation(backend, image, labels, request, batch_size=batch_size)
        elif base == "rise":
            n = len(out[next(iter(out))].order) if out else int(labels.max()) + 1
            masks = max(1, int(budget) - 2 * (n + 1))
            out[m] = rise(backend, image, labels, request, n_masks=masks, seed=seed, batch_size=batch_size)
        else:
            out[m] = captum_explain(
                base,
                backend,
                image,
                labels,
                request,
                budget=int(budget or 0),
                seed=seed,
                batch_size=batch_size,
            )
    return out


def paired_bootstrap(diffs: np.ndarray, n_boot: int = 5000, seed: int = 0) -> dict:
    """Mean of paired differences and its percentile 95% CI over `n_boot` resamples of the samples."""
    diffs = np.asarray(diffs, np.float64)
    if diffs.size == 0:
        return {"mean": None, "ci95": None, "n": 0}
    rng = np.random.default_rng(seed)
    means = diffs[rng.integers(0, diffs.size, size=(n_boot, diffs.size))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return {"mean": float(diffs.mean()), "ci95": [float(lo), float(hi)], "n": int(diffs.size)}


def _row(sample: str, kind: str, method: str, e: Explanation) -> dict:
    """The fields every per-sample row has: which sample and method, cost, and the two AUCs."""
    return {
        "sample": sample,
        "kind": kind,
        "method": method,
        "n_regions": e.n_regions,
        "forward_passes": e.forward_passes,
        "wall_time_s": e.wall_time_s,
        "insertion_auc": insertion_auc(e),
        "deletion_auc": deletion_auc(e),
    }


def _answer(backend, image, question):
    return backend.generate([GenerationRequest(image=image, prompt=question, max_new_tokens=3)])[0]


def collect(backend, cfg: CompareConfig, progress: bool = False, on_sample=None) -> dict:
    """Run every method on the suite's samples; returns per-sample rows and the scan counts.
    `on_sample(rows)` is called after each sample (e.g. to save partial results of a long run)."""
    from tqdm import tqdm

    from probe.classes import question_text
    from probe.suite import DISTRACTOR, make_hard_scene

    check_methods(cfg.methods)
    segmenter = SlicoSegmenter(n_segments=cfg.regions)
    yes_id, no_id = backend.token_id("Yes"), backend.token_id("No")
    rows: list[dict] = []
    skipped = 0
    bar = tqdm(total=cfg.n + cfg.n_hallucinations, desc="samples", disable=not progress, leave=False)
    done, index = 0, 0
    while done < cfg.n and index < cfg.max_scan * max(cfg.n, 1):
        kind = cfg.kinds[index % len(cfg.kinds)]
        hs = make_hard_scene(cfg.seed, index, kind)  # type: ignore[arg-type]
        sample = f"{kind}-{index}"
        index += 1
        question = question_text(hs.target)
        answer = _answer(backend, hs.scene.image, question)
        if parse_yes_no(answer.text) != "yes" or answer.token_ids[0] != yes_id:
            skipped += 1
            continue
        request = ScoreRequest(
            prompt=question, answer_ids=answer.token_ids, target_positions=(0,), target_ids=(yes_id,)
        )
        labels = segmenter.segment(hs.scene.image)
        mask, box, distractor = hs.mask(hs.target), hs.box(hs.target), hs.mask(DISTRACTOR)
        for m, e in _run_methods(
            backend, hs.scene.image, labels, request, cfg.methods, index, cfg.batch_size
        ).items():
            amap = e.attribution_map
            rows.append(
                {
                    **_row(sample, kind, m, e),
                    "point_game_box": float(point_game(amap, box)),
                    "point_game_mask": float(point_game(amap, mask)),
                    "energy_mask": energy_point_game(amap, mask),
                    "top_on_distractor": float(distractor.any() and point_game(amap, distractor)),
                }
            )
        done += 1
        bar.update(1)
        if on_sample is not None:
            on_sample(rows)

    said_yes, scanned, index = 0, 0, 0
    while said_yes < cfg.n_hallucinations and scanned < cfg.max_scan * max(cfg.n_hallucinations, 1):
        hs = make_hard_scene(cfg.seed, index, "planted")
        sample = f"planted-{index}"
        index += 1
        scanned += 1
        question = question_text(hs.target)
        answer = _answer(backend, hs.scene.image, question)
        if parse_yes_no(answer.text) != "yes":
            continue
        said_yes += 1
        request = ScoreRequest(
            prompt=question, answer_ids=answer.token_ids, target_positions=(0,), target_ids=(no_id,)
        )
        labels = segmenter.segment(hs.scene.image)
        cause = hs.mask(hs.cause)

        def regenerate(images, question=question):
            return backend.answer_images(images, question, max_new_tokens=3)

        explained = _run_methods(backend, hs.scene.image, labels, request, cfg.methods, index, cfg.batch_size)
        for m, e in explained.items():
            corr = correction_scan(hs.scene.image, labels, e.order, regenerate, says_no)
            rows.append(
                {
                    **_row(sample, "planted", m, e),
                    "pair": f"{hs.cause}->{hs.target}",
                    "cause_hit": float(region_on(labels, int(e.order[-1]), cause)),
                    "correction_area": corr.area_removed,
                    "csr10": float(corr.corrected and corr.area_removed <= 0.10 + 1e-12),
                }
            )
        bar.update(1)
        if on_sample is not None:
            on_sample(rows)
    bar.close()
    return {"rows": rows, "skipped_object_samples": skipped, "planted_scanned": scanned}


def summarise(rows: list[dict], methods: Sequence[str], n_boot: int = 5000, seed: int = 0) -> dict:
    """Per-method means, and paired differences (with 95% CIs) of every EAGLE search against every
    other method, per metric, over the samples both explained."""
    by = {m: {r["sample"]: r for r in rows if r["method"] == m} for m in methods}
    means: dict[str, dict] = {}
    for m in methods:
        rs = list(by[m].values())
        obj = [r for r in rs if r["kind"] != "planted"]
        hal = [r for r in rs if r["kind"] == "planted"]
        row: dict = {"forward_passes": float(np.mean([r["forward_passes"] for r in rs])) if rs else None}
        row["forward_passes_object"] = float(np.mean([r["forward_passes"] for r in obj])) if obj else None
        for key in OBJECT_METRICS:
            row[key] = float(np.mean([r[key] for r in obj])) if obj else None
        for key in HALLUCINATION_METRICS:
            row[key] = float(np.mean([r[key] for r in hal])) if hal else None
        row["amcr"] = row.pop("correction_area")
        row["n_object"], row["n_hallucination"] = len(obj), len(hal)
        means[m] = row
    diffs: dict[str, dict] = {}
    for ref in [m for m in methods if m.startswith("eagle-")]:
        for other in methods:
            if other == ref:
                continue
            pair: dict = {}
            for key in OBJECT_METRICS + HALLUCINATION_METRICS:
                planted = key in HALLUCINATION_METRICS  # AUCs and point game: object samples only
                common = [
                    s
                    for s in by[ref]
                    if s in by[other] and key in by[ref][s] and (by[ref][s]["kind"] == "planted") == planted
                ]
                d = np.array([by[ref][s][key] - by[other][s][key] for s in common])
                pair[key] = paired_bootstrap(d, n_boot, seed)
            diffs[f"{ref} - {other}"] = pair
    return {"means": means, "differences": diffs}


def compare(backend, cfg: CompareConfig, progress: bool = False, on_sample=None) -> dict:
    """Collect and summarise; JSON-safe. `on_sample(rows)` sees the rows after each sample."""
    start = time.perf_counter()
    data = collect(backend, cfg, progress, on_sample)
    out = summarise(data["rows"], cfg.methods, cfg.bootstrap)
    out.update(
        {
            "seed": cfg.seed,
            "regions": cfg.regions,
            "kinds": list(cfg.kinds),
            "methods": list(cfg.methods),
            "skipped_object_samples": data["skipped_object_samples"],
            "planted_scanned": data["planted_scanned"],
            "model_id": getattr(backend, "model_id", type(backend).__name__),
            "wall_time_s": time.perf_counter() - start,
            "rows": data["rows"],
        }
    )
    return out
