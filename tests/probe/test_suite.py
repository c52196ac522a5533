"""The hard probe suite: deterministic scenes whose ground truth matches their pixels."""

from __future__ import annotations

import numpy as np
import pytest

from probe.classes import PLANTED_PAIRS, class_by_name
from probe.suite import DISTRACTOR, HARD_KINDS, make_hard_scene


@pytest.mark.parametrize("kind", HARD_KINDS)
def test_scenes_are_deterministic_and_kinds_differ(kind):
    a, b = make_hard_scene(4, 7, kind), make_hard_scene(4, 7, kind)
    assert np.array_equal(a.scene.image, b.scene.image) and a.target == b.target
    assert not np.array_equal(a.scene.image, make_hard_scene(4, 8, kind).scene.image)


@pytest.mark.parametrize("kind", HARD_KINDS)
def test_ground_truth_matches_the_pixels(kind):
    for index in range(12):
        hs = make_hard_scene(0, index, kind)
        scene = hs.scene
        for o in scene.objects:
            visible = scene.labels == o.label
            assert visible.sum() == o.area > 0
            x0, y0, x1, y1 = o.box
            assert visible[y0:y1, x0:x1].sum() == o.area  # the box holds every visible pixel
            colour = class_by_name(hs.target if o.name == DISTRACTOR else o.name).rgb
            mean = scene.image[visible].mean(axis=0)
            assert np.abs(mean - colour).max() < 30, (kind, index, o.name)
        assert hs.mask(hs.target).any() == (kind != "planted")


def test_kinds_plant_what_they_promise():
    copies = [make_hard_scene(1, i, "copies") for i in range(20)]
    assert all(h.scene.names.count(h.target) >= 2 for h in copies)
    large = [make_hard_scene(1, i, "large") for i in range(20)]
    assert np.mean([h.mask(h.target).mean() for h in large]) > 0.08  # 3-6x a world object
    planted = [make_hard_scene(1, i, "planted") for i in range(20)]
    for h in planted:
        assert (h.cause, h.target) in PLANTED_PAIRS
        assert h.cause in h.scene.names and h.target not in h.scene.names
    assert any(h.scene.names.count(h.cause) == 2 for h in planted)
    assert any(DISTRACTOR in h.scene.names for h in copies + large)
    assert 5 <= max(len(h.scene.objects) for h in copies) <= 8


def test_unknown_kind_names_the_choices():
    with pytest.raises(ValueError, match="choose one of copies, large, planted"):
        make_hard_scene(0, 0, "crowded")  # type: ignore[arg-type]
