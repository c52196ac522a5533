"""The one image loader: a file as RGB uint8 (H, W, 3), with a pixel cap.

A small compressed file can decode to an enormous image (a 24 KB PNG of 200 megapixels needs 600 MB
as RGB, and far more in a model's preprocessing). The size is read from the header first and an
image over `max_pixels` is refused before any pixel is decoded; PIL's own decompression-bomb
check (which fires at twice `PIL.Image.MAX_IMAGE_PIXELS`) is reported the same way. Every failure
is an `ImageLoadError` naming the file, so a caller can fail that one sample and go on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from eagle.types import RGBImage

# Fits every image of the usual VQA/POPE data sets (COCO: <= 0.4 MP; large web or document images:
# tens of megapixels) with room to spare; a 64 MP image is 192 MB as RGB.
DEFAULT_MAX_PIXELS = 64_000_000


class ImageLoadError(ValueError):
    """An image file is missing, unreadable, or larger than the pixel cap."""


def load_rgb(path: Path | str, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> RGBImage:
    """Read an image file as RGB uint8 (H, W, 3): the one place images are opened and converted.

    Refuses images of more than `max_pixels` pixels (None: no cap of ours) before decoding them.
    Raises ImageLoadError naming `path`.
    """
    from PIL import Image, UnidentifiedImageError

    if max_pixels is not None and max_pixels < 1:
        raise ValueError(f"max_pixels must be at least 1 (or None for no cap), got {max_pixels}")
    try:
        with Image.open(path) as im:
            width, height = im.size
            if max_pixels is not None and width * height > max_pixels:
                raise ImageLoadError(
                    f"image {path} is {width}x{height} = {width * height / 1e6:.1f} megapixels, over the "
                    f"cap of {max_pixels / 1e6:g} MP (a decompression bomb, or a very large image: "
                    "raise the image pixel cap if it is real)"
                )
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except ImageLoadError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageLoadError(f"image {path} refused as a decompression bomb: {exc}") from exc
    except FileNotFoundError as exc:
        raise ImageLoadError(f"image {path} does not exist") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, MemoryError) as exc:
        # PIL raises OSError for truncated files, ValueError for oversized chunks, SyntaxError
        # for some malformed headers
        raise ImageLoadError(f"cannot read {path} as an image ({exc}); give a PNG or JPEG file") from exc
