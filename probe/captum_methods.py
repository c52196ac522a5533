"""captum's perturbation attributions on EAGLE's regions, scorer and targets, at a forward budget.

FeatureAblation, ShapleyValueSampling, KernelShap and Lime attribute over the regions themselves: the
input is the all-ones (1, n) vector of "region shown" indicators, the baseline all zeros (a removed
region is black, as in EAGLE's masking), and the forward function scores the masked images those
vectors describe (`eagle.scoring.RegionScorer`), so their perturbations are exactly the images EAGLE
scores; Lime's similarity kernel is taken in that interpretable space, as in LIME. Occlusion slides
square pixel windows over the (1, 3, H, W) image instead; its pixel attribution is averaged per
region. The forward function returns the mean target probability. The per-region saliency orders
the regions, and the curves of that order are scored like every baseline's
(`eagle.baselines.explain_saliency`, 2(n+1) images).

`budget` is the total forwards of one explanation (ranking + curves), so methods compare at equal
cost: Lime and KernelShap draw budget − 2(n+1) samples, ShapleyValueSampling as many permutations
(n forwards each, plus one) as fit. FeatureAblation (n+1) and Occlusion (one per window position)
have a fixed cost. captum is a test and benchmark dependency, never imported by eagle.
"""

from __future__ import annotations

import time

import numpy as np

from eagle.baselines import explain_saliency
from eagle.explanation import Explanation
from eagle.regions import check_image, check_labels
from eagle.scoring import RegionScorer
from eagle.types import LabelMap, RGBImage, Scorer, ScoreRequest

LIME_RIDGE_ALPHA = (
    1.0  # the lime package's Ridge default; captum's default Lasso(0.01) zeroes every weight here
)
CAPTUM_METHODS = ("feature_ablation", "occlusion", "shapley_sampling", "kernel_shap", "lime")


class _PixelForward:
    """Occlusion's forward function: (B, 3, H, W) float images -> (B,) mean target probability."""

    def __init__(self, scorer: Scorer, request: ScoreRequest, batch_size: int | None) -> None:
        self.scorer = scorer
        self.request = request
        self.batch_size = batch_size
        self.forwards = 0

    def __call__(self, images):
        import torch

        batch = images.detach().round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        step = self.batch_size or len(batch)
        scores = np.concatenate(
            [self.scorer.score(batch[i : i + step], self.request) for i in range(0, len(batch), step)]
        )
        self.forwards += len(batch)
        return torch.from_numpy(scores.mean(axis=1))


def _per_region(attr: np.ndarray, labels: LabelMap, n: int) -> np.ndarray:
    """Mean attribution (summed over channels) of each region's pixels, (n,)."""
    pixel = attr.sum(axis=0)  # (H, W)
    return np.bincount(labels.ravel(), weights=pixel.ravel(), minlength=n) / np.bincount(
        labels.ravel(), minlength=n
    )


def captum_explain(
    method: str,
    scorer: Scorer,
    image: RGBImage,
    labels: LabelMap,
    request: ScoreRequest,
    *,
    budget: int,
    seed: int = 0,
    occlusion_window: int = 16,
    occlusion_stride: int = 8,
    batch_size: int | None = 256,
) -> Explanation:
    """Explain `request` on `image` with one of CAPTUM_METHODS, spending at most `budget` forwards
    in all where the method's cost can be set (see the module docstring)."""
    import torch
    from captum._utils.models.linear_model import SkLearnRidge
    from captum.attr import FeatureAblation, KernelShap, Lime, Occlusion, ShapleyValueSampling

    check_image(image)
    n = check_labels(labels, image.shape[:2])
    curve_forwards = 2 * (n + 1)
    ranking_budget = budget - curve_forwards
    start = time.perf_counter()
    rs = RegionScorer(scorer, image, labels, request, n_regions=n, batch_size=batch_size)

    def region_forward(keep):  # (B, n) float indicators -> (B,) mean target probability
        return torch.from_numpy(rs(keep.detach().numpy() > 0.5).mean(axis=1))

    shown = torch.ones(1, n, dtype=torch.float64)
    features = torch.arange(n)[None]
    per_eval = batch_size or 256
    params: dict = {}
    torch.manual_seed(seed)
    if method == "occlusion":
        pixel_forward = _PixelForward(scorer, request, batch_size)
        w, s = occlusion_window, occlusion_stride
        pixels = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float()[None]
        attr = Occlusion(pixel_forward).attribute(
            pixels,
            sliding_window_shapes=(3, w, w),
            strides=(3, s, s),
            baselines=0.0,
            perturbations_per_eval=per_eval,
        )
        saliency = _per_region(attr[0].detach().double().numpy(), labels, n)
        forwards = pixel_forward.forwards
        params = {"window": w, "stride": s}
    else:
        if method == "feature_ablation":
            attr = FeatureAblation(region_forward).attribute(
                shown, baselines=0.0, feature_mask=features, perturbations_per_eval=per_eval
            )
        elif method in ("shapley_sampling", "kernel_shap", "lime"):
            if method == "shapley_sampling":
                samples = (ranking_budget - 1) // n
                algo = ShapleyValueSampling(region_forward)
            elif method == "kernel_shap":
                samples = ranking_budget
                algo = KernelShap(region_forward)
            else:
                samples = ranking_budget
                algo = Lime(region_forward, interpretable_model=SkLearnRidge(alpha=LIME_RIDGE_ALPHA))
            if samples < 1:
                raise ValueError(
                    f"budget {budget} leaves no {method} samples after the {curve_forwards} curve forwards; "
                    f"give a budget above {curve_forwards + (n + 1 if method == 'shapley_sampling' else 1)}"
                )
            attr = algo.attribute(
                shown,
                baselines=0.0,
                feature_mask=features,
                n_samples=samples,
                perturbations_per_eval=per_eval,
            )
            params = {"n_samples": samples}
        else:
            raise ValueError(f"unknown captum method {method!r}; choose one of {', '.join(CAPTUM_METHODS)}")
        saliency = attr[0].detach().double().numpy()
        forwards = rs.forwards
    return explain_saliency(
        f"captum-{method}",
        scorer,
        image,
        labels,
        request,
        saliency,
        ranking_forwards=forwards,
        start=start,
        params={**params, "budget": budget, "seed": seed},
        batch_size=batch_size,
    )
