"""What EAGLE maximises for a target: each token's own probability, or the absence of a whole span.

`"tokens"` (the default, paper §1): f̄ is the mean probability of the request's target tokens. A
yes/no hallucination is explained through its *counter* token ("No" where the model said "Yes"),
so the regions EAGLE ranks last, the top of `1 − map`, are the ones driving the hallucination.

`"span-absence"`: the targets are the tokens of one mention in a generated text (a hallucinated
" star" in a caption, possibly several tokens: " gir" + "affe"). Its probability is the *joint*
probability P = Π_i p_i of the span's tokens under teacher forcing: the chance that the model
writes the whole mention at that point, given the answer before it. EAGLE explains the correct
outcome, the mention not being written, 1 − P, exactly as it explains the counter token of a
yes/no error; so the convention stays the same for both: the top of `1 − map` drives the
hallucination, and the correction scan removes those regions first. A caption has no single
counter token to score instead (the model could write anything else), which is why the
complement of the joint probability is the target.

`SpanAbsenceScorer` wraps any `Scorer`: one backend call per image batch, as before, and the value
1 − P repeated in every one of the N target columns, so EAGLE's mean over targets is exactly 1 − P
and every shape (curves (n+1, N), explanations, stored rows) stays as for N tokens.

Example::

    >>> expl = Eagle(SpanAbsenceScorer(backend)).explain(image, regions, span_request)  # doctest: +SKIP
    >>> driver = expl.order[-1]  # the region that most supports writing the mention
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from eagle.types import MaskedImages, MaskedScorer, RGBBatch, Scorer, ScoreRequest, Scores

Objective = Literal["tokens", "span-absence"]
OBJECTIVES: tuple[Objective, ...] = ("tokens", "span-absence")


class SpanAbsenceScorer:
    """1 − Π_i p_i over the request's targets, in each of the N columns (see the module docstring)."""

    def __init__(self, scorer: Scorer) -> None:
        self.scorer = scorer

    def score(self, images: RGBBatch, request: ScoreRequest) -> Scores:
        return self._absence(self.scorer.score(images, request), len(images), request)

    def score_masked(self, masked: MaskedImages, request: ScoreRequest) -> Scores:
        """As `score(masked.compose(), request)`, through the wrapped scorer's own masked path if any."""
        if isinstance(self.scorer, MaskedScorer):
            return self._absence(self.scorer.score_masked(masked, request), len(masked), request)
        return self.score(masked.compose(), request)

    def _absence(self, scores: Scores, n_images: int, request: ScoreRequest) -> Scores:
        p = np.asarray(scores, np.float64)  # (B, N)
        if p.shape != (n_images, request.n_targets):
            raise ValueError(
                f"scorer {type(self.scorer).__name__} returned scores of shape {p.shape} for "
                f"{n_images} images and {request.n_targets} targets"
            )
        absent = 1.0 - np.exp(np.log(np.clip(p, 1e-300, 1.0)).sum(axis=1, keepdims=True))  # (B, 1)
        return np.repeat(absent, request.n_targets, axis=1)


def objective_scorer(scorer: Scorer, objective: Objective) -> Scorer:
    """The scorer EAGLE searches with for `objective` ("tokens": `scorer` itself)."""
    if objective == "tokens":
        return scorer
    if objective == "span-absence":
        return SpanAbsenceScorer(scorer)
    raise ValueError(f"unknown objective {objective!r}; choose one of {', '.join(OBJECTIVES)}")
