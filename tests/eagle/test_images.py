"""The one image loader: RGB uint8 out, and every bad file (missing, corrupt, a decompression bomb,
over the pixel cap) an ImageLoadError naming it, without decoding the pixels of a bomb."""

from __future__ import annotations

import resource

import numpy as np
import pytest
from PIL import Image

from eagle.images import DEFAULT_MAX_PIXELS, ImageLoadError, load_rgb
from tests.support.images import write_png_bomb


def test_loads_rgb_uint8_from_any_mode(tmp_path):
    grey = np.arange(48, dtype=np.uint8).reshape(6, 8)
    Image.fromarray(grey, mode="L").save(tmp_path / "g.png")
    rgba = np.zeros((4, 5, 4), np.uint8)
    rgba[..., 0] = 200
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    g = load_rgb(tmp_path / "g.png")
    assert g.shape == (6, 8, 3) and g.dtype == np.uint8 and np.array_equal(g[..., 1], grey)
    assert load_rgb(str(tmp_path / "a.png"))[0, 0].tolist() == [200, 0, 0]


def test_a_decompression_bomb_is_refused_before_decoding(tmp_path):
    bomb = write_png_bomb(tmp_path / "bomb.png")  # 200 MP: over PIL's own hard limit too
    assert bomb.stat().st_size < 40_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ImageLoadError, match=r"bomb\.png") as e:
        load_rgb(bomb)
    assert isinstance(e.value, ValueError)
    # nothing near the 600 MB of its pixels was allocated (ru_maxrss is in KiB on Linux)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000


def test_the_pixel_cap_is_ours_and_configurable(tmp_path):
    big = write_png_bomb(tmp_path / "big.png", 10_000, 7_000)  # 70 MP: under PIL's error, over our cap
    with pytest.raises(ImageLoadError, match=r"10000x7000 = 70\.0 megapixels, over the cap of 64 MP"):
        load_rgb(big)
    assert DEFAULT_MAX_PIXELS == 64_000_000
    warned = write_png_bomb(tmp_path / "warned.png", 12_000, 9_000)  # 108 MP: PIL only warns
    with (
        pytest.warns(Image.DecompressionBombWarning),
        pytest.raises(ImageLoadError, match=r"108\.0 megapixels, over the cap"),
    ):
        load_rgb(warned)
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "small.png")
    with pytest.raises(ImageLoadError, match=r"over the cap of 0\.0005 MP"):
        load_rgb(tmp_path / "small.png", max_pixels=500)
    assert load_rgb(tmp_path / "small.png", max_pixels=600).shape == (20, 30, 3)
    assert load_rgb(tmp_path / "small.png", max_pixels=None).shape == (20, 30, 3)
    with pytest.raises(ValueError, match="max_pixels must be at least 1"):
        load_rgb(tmp_path / "small.png", max_pixels=0)


def test_missing_and_corrupt_files_name_the_file(tmp_path):
    with pytest.raises(ImageLoadError, match=r"nope\.png does not exist"):
        load_rgb(tmp_path / "nope.png")
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(ImageLoadError, match=r"cannot read .*text\.png as an image"):
        load_rgb(tmp_path / "text.png")
    Image.fromarray(np.full((64, 64, 3), 7, np.uint8)).save(tmp_path / "whole.png")
    data = (tmp_path / "whole.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageLoadError, match=r"cut\.png"):
        load_rgb(tmp_path / "cut.png")
