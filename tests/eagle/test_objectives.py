"""The span-absence objective: EAGLE on 1 − Π p_i of a mention's tokens puts the regions that make
the model write the mention at the top of 1 − map, as the counter token does for a yes/no error."""

from __future__ import annotations

import numpy as np
import pytest
from eagle_fakes import LinearScorer, grid_labels, region_image, request, visible_regions

from eagle.method import Eagle
from eagle.objectives import SpanAbsenceScorer, objective_scorer
from eagle.search import EfficientSearch, ExactSearch


class MentionScorer:
    """Both tokens of a two-token mention become likely when region `driver` is visible, a little
    more with each of `helpers`; other regions do nothing."""

    def __init__(self, labels: np.ndarray, driver: int, helpers: tuple[int, ...] = ()) -> None:
        self.labels, self.driver, self.helpers = labels, driver, helpers

    def score(self, images, req):
        v = visible_regions(images, self.labels)
        p = 0.02 + 0.8 * v[:, self.driver] + 0.05 * v[:, list(self.helpers)].sum(axis=1)
        return np.stack([p, np.sqrt(p)], axis=1)[:, : req.n_targets]


def test_the_absence_of_the_span_is_one_minus_the_joint_probability_in_every_column() -> None:
    labels = grid_labels(2, 3)
    weights = np.array([[1, 0], [2, 1], [0, 3], [1, 1], [0, 0.5], [3, 0]], float)
    base = LinearScorer(labels, weights)
    image = region_image(labels)
    keep = np.array([[1, 1, 0, 0, 1, 0], [0, 1, 1, 1, 1, 1]], bool)
    from eagle.masking import compose

    images = compose(image, labels, keep)
    p = base.score(images, request(2))
    got = SpanAbsenceScorer(base).score(images, request(2))
    assert got.shape == (2, 2)
    np.testing.assert_allclose(got[:, 0], 1 - p[:, 0] * p[:, 1])
    np.testing.assert_array_equal(got[:, 0], got[:, 1])
    assert objective_scorer(base, "tokens") is base
    with pytest.raises(ValueError, match="unknown objective 'mean'"):
        objective_scorer(base, "mean")  # type: ignore[arg-type]


@pytest.mark.parametrize("search", [ExactSearch(), EfficientSearch()], ids=["exact", "efficient"])
def test_the_region_that_drives_the_mention_tops_one_minus_map(search) -> None:
    labels = grid_labels(3, 3)
    image = region_image(labels)
    scorer = MentionScorer(labels, driver=4, helpers=(7,))
    expl = Eagle(SpanAbsenceScorer(scorer), search=search).explain(image, labels, request(2))
    assert expl.order[-1] == 4 and expl.order[-2] == 7  # the driver last: the top of 1 − map
    hm = expl.hallucination_map
    assert hm[labels == 4].min() == hm.max()
    # the explained value is the span's absence: 1 − p1·p2 with everything visible
    p = scorer.score(image[None], request(2))[0]
    assert expl.insertion[-1, 0] == pytest.approx(1 - p[0] * p[1])
    # explaining the tokens themselves ranks the driver first instead
    direct = Eagle(scorer, search=search).explain(image, labels, request(2))
    assert direct.order[0] == 4
