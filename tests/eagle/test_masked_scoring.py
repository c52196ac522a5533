"""Masked batches reach a `MaskedScorer` as a description (image, label map, keep rows) and every
other scorer as composed images, with the same scores either way (and through span-absence)."""

from __future__ import annotations

import numpy as np
from eagle_fakes import InteractionScorer, grid_labels, region_image, request

from eagle.masking import compose
from eagle.objectives import SpanAbsenceScorer
from eagle.scoring import RegionScorer
from eagle.types import MaskedImages, MaskedScorer


class DescribedScorer(InteractionScorer):
    """The interaction scorer, also scoring masked batches from their description."""

    def __init__(self, labels):
        super().__init__(labels)
        self.described: list[int] = []

    def score_masked(self, masked: MaskedImages, req):
        self.described.append(len(masked))
        return self.score(masked.compose(), req)


def test_region_scorer_describes_masked_batches_to_masked_scorers_only():
    labels = grid_labels(3, 3)
    image = region_image(labels)
    keep = np.random.default_rng(0).random((10, 9)) < 0.5
    plain, described = InteractionScorer(labels), DescribedScorer(labels)
    assert isinstance(described, MaskedScorer) and not isinstance(plain, MaskedScorer)
    a = RegionScorer(plain, image, labels, request(2), n_regions=9, batch_size=4)(keep)
    b = RegionScorer(described, image, labels, request(2), n_regions=9, batch_size=4)(keep)
    assert np.array_equal(a, b)
    assert described.described == [4, 4, 2] and plain.calls == [4, 4, 2]


def test_span_absence_forwards_the_description():
    labels = grid_labels(3, 3)
    image = region_image(labels)
    keep = np.random.default_rng(1).random((6, 9)) < 0.5
    masked = MaskedImages(image, labels, keep)
    inner = DescribedScorer(labels)
    got = SpanAbsenceScorer(inner).score_masked(masked, request(2))
    assert inner.described == [6]
    want = SpanAbsenceScorer(InteractionScorer(labels)).score(compose(image, labels, keep), request(2))
    assert np.array_equal(got, want)
