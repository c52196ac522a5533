"""The client's own PNG writer: lossless for any RGB image, readable by PIL (what vLLM decodes with)."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from eagle.backends.png import png_bytes, png_data_url


@pytest.mark.parametrize("shape", [(1, 1, 3), (7, 13, 3), (128, 128, 3), (300, 257, 3)])
@pytest.mark.parametrize("level", [0, 1, 9])
def test_png_round_trips_exactly_through_pil(shape, level):
    image = np.random.default_rng(sum(shape) + level).integers(0, 256, shape, dtype=np.uint8)
    decoded = Image.open(io.BytesIO(png_bytes(image, level)))
    assert decoded.mode == "RGB" and decoded.size == (shape[1], shape[0])
    np.testing.assert_array_equal(np.asarray(decoded), image)


def test_data_url_carries_the_same_png_and_masked_images_compress():
    image = np.zeros((128, 128, 3), np.uint8)
    image[32:64, 40:90] = (160, 235, 60)  # one visible region, the rest masked to black
    url = png_data_url(image)
    assert url.startswith("data:image/png;base64,")
    raw = base64.b64decode(url.split(",", 1)[1])
    assert raw == png_bytes(image)
    assert len(raw) < image.nbytes / 10


@pytest.mark.parametrize(
    "bad", [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 4), np.uint8), np.zeros((4, 4, 3))]
)
def test_rejects_what_is_not_an_rgb_uint8_image(bad):
    with pytest.raises(ValueError, match="uint8 RGB"):
        png_bytes(bad)
