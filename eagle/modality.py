"""Per-token modality analysis (paper §7): how much each target token rests on visual evidence.

From the per-token insertion curve p_t(r), r = 0..n (r = 0 the black image, r = n the full image):
  I_t (step form)  = Σ_r (p_t(r) − min_j p_t(j))
  I_t^area         = ∫ (p_t − min p_t) d(area)   (trapezoid over the cumulative area)
  visually sensitive: p_t(full) − p_t(black) > SENSITIVE_DELTA
High I_t: the token rests on what the image shows; low I_t: a language prior.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SENSITIVE_DELTA = 0.2


@dataclass(frozen=True, kw_only=True, slots=True)
class TokenModality:
    influence: np.ndarray  # (N,) I_t, step form
    influence_area: np.ndarray  # (N,) I_t^area
    sensitive: np.ndarray  # (N,) bool, p(full) − p(black) > SENSITIVE_DELTA


def trapezoid(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Trapezoid integral of y (n+1, ...) over x (n+1,) along axis 0."""
    dx = np.diff(x).reshape((-1,) + (1,) * (y.ndim - 1))
    return ((y[1:] + y[:-1]) * 0.5 * dx).sum(axis=0)


def modality(insertion: np.ndarray, areas: np.ndarray, delta: float = SENSITIVE_DELTA) -> TokenModality:
    """Per-token influence from the insertion curves (n+1, N) over cumulative areas (n+1,)."""
    lifted = insertion - insertion.min(axis=0, keepdims=True)
    return TokenModality(
        influence=lifted.sum(axis=0),
        influence_area=trapezoid(lifted, areas),
        sensitive=(insertion[-1] - insertion[0]) > delta,
    )
