"""Gains and the region attribution of paper §6, with λ1/λ2 honoured and degenerate cases guarded."""

from __future__ import annotations

import numpy as np


def objective_curve(
    insertion: np.ndarray, deletion: np.ndarray, lambda1: float, lambda2: float
) -> np.ndarray:
    """F(S_k) for k = 0..n from the (n+1, N) curves: λ1·mean ins_k + λ2·(1 − mean del_k)."""
    return lambda1 * insertion.mean(axis=1) + lambda2 * (1.0 - deletion.mean(axis=1))


def gains(insertion: np.ndarray, deletion: np.ndarray, lambda1: float, lambda2: float) -> np.ndarray:
    """Δ_k = F(S_k) − F(S_{k−1}) for k = 1..n, (n,); F(S_0) uses the black and full images."""
    return np.diff(objective_curve(insertion, deletion, lambda1, lambda2))


def eagle_region_scores(order: np.ndarray, step_gains: np.ndarray) -> np.ndarray:
    """Attribution per region id (n,): region k of the order gets (c_n − c_k)/(c_n − c_1) with
    c_k = Σ_{j≤k} |Δ_j|: the first region 1, the last 0, spaced by gain.

    With n = 1 the single region gets 1. When every gain after the first is zero the spacing
    carries no information, so the order alone is kept: linear spacing from 1 down to 0.
    """
    n = len(order)
    scores = np.zeros(n, np.float64)
    if n == 1:
        scores[order[0]] = 1.0
        return scores
    c = np.cumsum(np.abs(step_gains))
    span = c[-1] - c[0]
    if span <= 1e-12 * max(1.0, abs(c[-1])):
        values = np.linspace(1.0, 0.0, n)
    else:
        values = (c[-1] - c) / span
    scores[order] = values
    return scores


def rank_region_scores(order: np.ndarray) -> np.ndarray:
    """Attribution from an order alone: linear from 1 (first) to 0 (last), (n,)."""
    n = len(order)
    scores = np.zeros(n, np.float64)
    scores[order] = np.linspace(1.0, 0.0, n) if n > 1 else 1.0
    return scores


def normalise(values: np.ndarray) -> np.ndarray:
    """Min-max scale to [0, 1]; a constant vector maps to zeros."""
    lo, hi = float(values.min()), float(values.max())
    if hi - lo <= 1e-12:
        return np.zeros_like(values, dtype=np.float64)
    return (values - lo) / (hi - lo)
