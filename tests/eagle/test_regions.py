"""SLICO regions and masking."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.measure import label as connected

from eagle.masking import compose, keep_matrix
from eagle.regions import GridSegmenter, Segmenter, SlicoSegmenter, check_labels, region_areas, relabel


def scene(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 40, (96, 128, 3)).astype(np.uint8)
    image[10:50, 20:60] = (220, 30, 30)
    image[50:90, 70:120] = (30, 60, 220)
    return image


@pytest.mark.parametrize("d", [16, 64])
def test_slico_gives_contiguous_connected_regions(d):
    labels = SlicoSegmenter(n_segments=d).segment(scene())
    assert labels.shape == (96, 128) and labels.dtype == np.int32
    n = check_labels(labels, (96, 128))
    assert 0.4 * d <= n <= 1.6 * d
    for r in range(n):  # connectivity enforced: every region is one 4/8-connected piece
        assert connected(labels == r, connectivity=2).max() == 1
    assert region_areas(labels, n).sum() == pytest.approx(1.0)
    assert isinstance(SlicoSegmenter(), Segmenter) and isinstance(GridSegmenter(), Segmenter)


def test_slico_is_deterministic_and_handles_one_region():
    a = SlicoSegmenter(n_segments=32).segment(scene(1))
    np.testing.assert_array_equal(a, SlicoSegmenter(n_segments=32).segment(scene(1)))
    assert SlicoSegmenter(n_segments=1).segment(scene()).max() == 0


def test_grid_segmenter_and_relabel():
    labels = GridSegmenter(rows=3, cols=4).segment(scene())
    assert check_labels(labels) == 12
    np.testing.assert_array_equal(relabel(np.array([[5, 9], [9, 2]])), [[1, 2], [2, 0]])


def test_compose_matches_naive_masks_in_uint8():
    image = scene()
    labels = GridSegmenter(rows=4, cols=4).segment(image)
    sets = [[0, 5], [], list(range(16)), [15]]
    out = compose(image, labels, keep_matrix(sets, 16))
    assert out.dtype == np.uint8 and out.shape == (4, 96, 128, 3)
    assert out.flags.c_contiguous  # input builders read it fastest in C order
    for b, regions in enumerate(sets):
        naive = np.where(np.isin(labels, regions)[..., None], image, 0)
        np.testing.assert_array_equal(out[b], naive)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="uint8"):
        SlicoSegmenter().segment(scene().astype(float))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        SlicoSegmenter().segment(np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="boolean"):
        compose(scene(), np.zeros((96, 128), np.int32), np.zeros((1, 1), int))
