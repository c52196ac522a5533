"""`MaskedResize`: Pillow's resize of masked images computed from the regions, bit for bit, for every
Pillow filter, down and up, on grid and superpixel label maps; and a plan whose weights are not
Pillow's is refused."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from eagle.backends import masked_resize
from eagle.backends.masked_resize import MaskedResize
from eagle.masking import compose
from eagle.regions import GridSegmenter, SlicoSegmenter

BICUBIC, BILINEAR, LANCZOS, BOX, HAMMING, NEAREST = (
    Image.BICUBIC, Image.BILINEAR, Image.LANCZOS, Image.BOX, Image.HAMMING, Image.NEAREST
)


def pillow(image, labels, keep, size, resample):
    h, w = size
    return np.stack([np.asarray(Image.fromarray(m).resize((w, h), resample=resample))
                     for m in compose(image, labels, keep)])  # fmt: skip


def scene(height, width, seed=0):
    """A random image with flat patches and sharp edges (large sums near 0 and 255 exercise clipping)."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    image[: height // 3, : width // 2] = 255
    image[height // 2 :, width // 3 :: 2] = 0
    return image


def keep_rows(n, seed=0):
    rng = np.random.default_rng(seed)
    rows = rng.random((6, n)) < 0.5
    rows[0], rows[1] = True, False
    return rows


SHAPES = [((96, 80), (24, 20)), ((70, 90), (32, 48)), ((30, 26), (52, 40))]  # (input, output) sizes


@pytest.mark.parametrize("resample", [BICUBIC, BILINEAR, LANCZOS, BOX, HAMMING],
                         ids=["bicubic", "bilinear", "lanczos", "box", "hamming"])  # fmt: skip
@pytest.mark.parametrize(("shape", "size"), SHAPES, ids=["down4", "down-uneven", "up"])
@pytest.mark.parametrize("segmenter", [GridSegmenter(rows=5, cols=4), SlicoSegmenter(n_segments=12)],
                         ids=["grid", "slic"])  # fmt: skip
def test_equals_pillow_on_masked_images_bit_for_bit(resample, shape, size, segmenter):
    image = scene(*shape)
    labels = segmenter.segment(image)
    plan = MaskedResize.build(image, labels, size, resample)
    assert plan is not None
    keep = keep_rows(int(labels.max()) + 1)
    got = plan(keep)
    assert got.dtype == np.uint8 and got.shape == (len(keep), *size, 3)
    assert np.array_equal(got, pillow(image, labels, keep, size, resample))
    if not (resample == BOX and size[0] > shape[0]):  # box upsampling reads one input per output
        assert len(plan.mixed) > 0  # the boundaries really were computed, not copied


def test_the_probe_resize_at_512_px():
    image = scene(512, 512, seed=4)
    labels = SlicoSegmenter(n_segments=40).segment(image)
    plan = MaskedResize.build(image, labels, (128, 128), BICUBIC)
    keep = keep_rows(int(labels.max()) + 1, seed=5)
    assert np.array_equal(plan(keep), pillow(image, labels, keep, (128, 128), BICUBIC))


def test_one_unchanged_side_is_no_pass():
    image = scene(64, 48)
    labels = GridSegmenter(rows=3, cols=3).segment(image)
    for size in [(64, 20), (16, 48), (64, 48)]:
        plan = MaskedResize.build(image, labels, size, BICUBIC)
        keep = keep_rows(9)
        assert np.array_equal(plan(keep), pillow(image, labels, keep, size, BICUBIC)), size


def test_weights_that_are_not_pillows_are_refused(monkeypatch):
    image = scene(96, 80)
    labels = GridSegmenter(rows=4, cols=4).segment(image)
    real = masked_resize.pass_weights

    def off_by_a_little(in_size, out_size, resample):
        starts, weights = real(in_size, out_size, resample)
        weights = weights.copy()
        weights[:, 0] += 1 << 14  # 1/256 of a level: visible after clipping somewhere
        return starts, weights

    monkeypatch.setattr(masked_resize, "pass_weights", off_by_a_little)
    assert MaskedResize.build(image, labels, (24, 20), BICUBIC) is None


def test_nearest_is_declined():
    image = scene(40, 40)
    labels = GridSegmenter(rows=2, cols=2).segment(image)
    assert MaskedResize.build(image, labels, (10, 10), NEAREST) is None
