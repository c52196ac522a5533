"""`Explanation`: the typed, shape-checked result of one attribution, convertible to plain JSON.

Curves have n+1 rows: row k is the state after the first k regions of `order`. Insertion row 0 is
the black image and row n the full image; deletion row 0 is the full image and row n the black one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from eagle.attribution import objective_curve
from eagle.modality import TokenModality, modality, trapezoid


@dataclass(frozen=True, kw_only=True)
class Explanation:
    method: str  # "eagle-exact", "eagle-efficient", "random", "ablation", "rise"
    order: np.ndarray  # (n,) int64 region ids, most important first
    labels: np.ndarray  # (H, W) int32 label map, ids 0..n-1
    areas: np.ndarray  # (n+1,) cumulative share of the image in the first k regions, 0 .. 1
    insertion: np.ndarray  # (n+1, N) per-token probabilities, first k regions visible
    deletion: np.ndarray  # (n+1, N) per-token probabilities, first k regions removed
    gains: np.ndarray  # (n,) Δ_k = F(S_k) − F(S_{k−1})
    region_scores: np.ndarray  # (n,) attribution per region id, in [0, 1] (1 = most important)
    target_ids: tuple[int, ...]  # (N,)
    target_positions: tuple[int, ...]  # (N,) answer positions of the targets
    prompt: str = ""
    answer_ids: tuple[int, ...] = ()
    lambda1: float = 1.0
    lambda2: float = 1.0
    forward_passes: int = 0  # images scored to produce this explanation
    wall_time_s: float = 0.0
    params: dict[str, Any] = field(default_factory=dict)  # search and method settings

    def __post_init__(self) -> None:
        n = len(self.order)
        n_targets = len(self.target_ids)
        expected = {
            "order": (n,),
            "areas": (n + 1,),
            "insertion": (n + 1, n_targets),
            "deletion": (n + 1, n_targets),
            "gains": (n,),
            "region_scores": (n,),
        }
        for name, shape in expected.items():
            got = np.shape(getattr(self, name))
            if got != shape:
                raise ValueError(
                    f"Explanation.{name} has shape {got}, expected {shape} (n={n}, N={n_targets})"
                )
        if self.labels.ndim != 2 or (n and int(self.labels.max()) != n - 1):
            raise ValueError(f"Explanation.labels must be a label map (H, W) with ids 0..{n - 1}")
        if sorted(self.order.tolist()) != list(range(n)):
            raise ValueError("Explanation.order must be a permutation of the region ids 0..n-1")
        if len(self.target_positions) != n_targets:
            raise ValueError("target_positions and target_ids must have the same length")

    # ---- derived views -------------------------------------------------------------------
    @property
    def n_regions(self) -> int:
        return len(self.order)

    @property
    def insertion_mean(self) -> np.ndarray:
        """(n+1,) mean over targets of the insertion curve."""
        return self.insertion.mean(axis=1)

    @property
    def deletion_mean(self) -> np.ndarray:
        """(n+1,) mean over targets of the deletion curve."""
        return self.deletion.mean(axis=1)

    @property
    def objective(self) -> np.ndarray:
        """(n+1,) F(S_k) with this explanation's λ1, λ2."""
        return objective_curve(self.insertion, self.deletion, self.lambda1, self.lambda2)

    @property
    def attribution_map(self) -> np.ndarray:
        """(H, W) float64 attribution per pixel (the region's score)."""
        return self.region_scores[self.labels]

    @property
    def hallucination_map(self) -> np.ndarray:
        """(H, W) 1 − map: for a counter-token explanation, the regions that drive the hallucination."""
        return 1.0 - self.attribution_map

    @property
    def modality(self) -> TokenModality:
        return modality(self.insertion, self.areas)

    @property
    def insertion_auc(self) -> float:
        return float(trapezoid(self.insertion_mean, self.areas))

    @property
    def deletion_auc(self) -> float:
        return float(trapezoid(self.deletion_mean, self.areas))

    # ---- serialisation -------------------------------------------------------------------
    _ARRAYS = ("order", "labels", "areas", "insertion", "deletion", "gains", "region_scores")

    def to_dict(self, include_labels: bool = True) -> dict[str, Any]:
        """Plain lists, numbers and strings (JSON-safe), plus derived fields for readers."""
        out: dict[str, Any] = {
            "method": self.method,
            "prompt": self.prompt,
            "answer_ids": list(self.answer_ids),
            "target_ids": list(self.target_ids),
            "target_positions": list(self.target_positions),
            "lambda1": self.lambda1,
            "lambda2": self.lambda2,
            "forward_passes": self.forward_passes,
            "wall_time_s": self.wall_time_s,
            "params": self.params,
        }
        for name in self._ARRAYS:
            if name == "labels" and not include_labels:
                continue
            out[name] = np.asarray(getattr(self, name)).tolist()
        mod = self.modality
        out["derived"] = {
            "insertion_auc": self.insertion_auc,
            "deletion_auc": self.deletion_auc,
            "insertion_mean": self.insertion_mean.tolist(),
            "deletion_mean": self.deletion_mean.tolist(),
            "influence": mod.influence.tolist(),
            "influence_area": mod.influence_area.tolist(),
            "sensitive": mod.sensitive.tolist(),
        }
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Explanation:
        """Inverse of to_dict (derived fields are recomputed, not read)."""
        if "labels" not in data:
            raise ValueError("this explanation was saved without its label map (include_labels=False)")
        return cls(
            method=data["method"],
            order=np.asarray(data["order"], np.int64),
            labels=np.asarray(data["labels"], np.int32),
            areas=np.asarray(data["areas"], np.float64),
            insertion=np.asarray(data["insertion"], np.float64).reshape(-1, len(data["target_ids"])),
            deletion=np.asarray(data["deletion"], np.float64).reshape(-1, len(data["target_ids"])),
            gains=np.asarray(data["gains"], np.float64),
            region_scores=np.asarray(data["region_scores"], np.float64),
            target_ids=tuple(data["target_ids"]),
            target_positions=tuple(data["target_positions"]),
            prompt=data.get("prompt", ""),
            answer_ids=tuple(data.get("answer_ids", ())),
            lambda1=float(data.get("lambda1", 1.0)),
            lambda2=float(data.get("lambda2", 1.0)),
            forward_passes=int(data.get("forward_passes", 0)),
            wall_time_s=float(data.get("wall_time_s", 0.0)),
            params=dict(data.get("params", {})),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict())
