"""Model inputs for many same-size images under one prompt, without running the processor per image.

EAGLE scores hundreds of masked variants of one image under one prompt. Through a Hugging Face
processor each variant costs a PIL round trip, a resize and a normalisation (~0.7 ms per 128 px
image on one CPU core, as much as the probe model's batched forward). When the processor's pixel
transform is a pure per-channel function of the uint8 value at the same pixel (no resize or crop
at this image size: CLIP/SigLIP/LLaVA-style processors given images already at their size), it
is a 3 x 256 table. This module reads that table off the processor itself, checks it reproduces
the processor's output exactly on two random images and a black one, and then builds a batch by table lookup.
The prompt's token ids are the processor's own, computed once. Whenever the check fails (a
resize, a crop, patch flattening as in Qwen2-VL, extra outputs), it declines and the caller runs
the processor: the fast path never changes a score, only how fast it is computed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

_PLAIN_KEYS = {"input_ids", "attention_mask", "pixel_values"}
_LOOKUP_CHUNK = 4


@dataclass(frozen=True)
class _Plan:
    """What one (prompt text, image size) needs: the prompt's processor ids and the pixel table."""

    input_ids: Any  # torch.LongTensor (1, L)
    attention_mask: Any  # torch.LongTensor (1, L)
    table: np.ndarray  # (3, 256) float32: pixel value per channel and uint8 level


class SharedPromptInputs:
    """Processor-exact inputs for a batch of (B, H, W, 3) uint8 images sharing one prompt text.

    Call it with the prompt text and the batch; it returns the processor's dict of tensors, or None
    when this processor's output cannot be reproduced by a pixel table (then use the processor).
    """

    def __init__(self, processor: Any) -> None:
        self.processor = processor
        self._plans: dict[tuple[str, int, int], _Plan | None] = {}

    def __call__(self, text: str, images: np.ndarray) -> dict[str, Any] | None:
        import torch

        _, height, width, _ = images.shape
        key = (text, height, width)
        if key not in self._plans:
            self._plans[key] = self._plan(text, height, width)
        plan = self._plans[key]
        if plan is None:
            return None
        n = len(images)
        pixels = np.empty((n, 3, height, width), np.float32)
        for start in range(0, n, _LOOKUP_CHUNK):  # small chunks keep numpy's index copy in cache
            part = images[start : start + _LOOKUP_CHUNK]
            out = pixels[start : start + len(part)]
            for c in range(3):
                # A uint8 level cannot leave the 256-entry row, so "clip" (which skips numpy's
                # bounds check) never changes a value; it makes the lookup ~1.5x faster.
                plan.table[c].take(part[..., c], out=out[:, c], mode="clip")
        return {
            "input_ids": plan.input_ids.expand(n, -1),
            "attention_mask": plan.attention_mask.expand(n, -1),
            "pixel_values": torch.from_numpy(pixels),
        }

    def _run_processor(self, text: str, image: np.ndarray) -> dict[str, Any]:
        from PIL import Image

        out = self.processor(text=[text], images=[Image.fromarray(image)], return_tensors="pt")
        return dict(out)

    def _plan(self, text: str, height: int, width: int) -> _Plan | None:
        """Tabulate and verify the processor's pixel transform at this size, or None if it is not
        a per-pixel table (the reason is logged at debug level)."""
        if height * width < 256:
            return self._decline(text, height, width, "fewer pixels than uint8 levels")
        rng = np.random.default_rng(0)
        # Two random images with every level in every channel, and the all-black image that every
        # EAGLE run scores (all regions removed).
        probes = [_all_levels_image(rng, height, width) for _ in range(2)]
        probes.append(np.zeros((height, width, 3), np.uint8))
        outputs = [self._run_processor(text, probe) for probe in probes]
        first = outputs[0]
        if set(first) != _PLAIN_KEYS:
            return self._decline(text, height, width, f"processor outputs {sorted(first)}")
        pv = first["pixel_values"]
        if tuple(pv.shape) != (1, 3, height, width) or not pv.dtype.is_floating_point:
            return self._decline(text, height, width, f"pixel_values {tuple(pv.shape)} {pv.dtype}")
        table = np.zeros((3, 256), np.float32)
        for c in range(3):
            table[c, probes[0][..., c].ravel()] = pv[0, c].numpy().ravel()
        for probe, out in zip(probes, outputs, strict=True):
            if not out["input_ids"].equal(first["input_ids"]):
                return self._decline(text, height, width, "prompt ids depend on the image content")
            pixels = np.stack([table[c][probe[..., c]] for c in range(3)])
            if not np.array_equal(pixels, out["pixel_values"][0].numpy()):
                return self._decline(text, height, width, "pixel transform is not per-pixel at this size")
        log.debug("processor inputs for %dx%d images via a verified pixel table", height, width)
        return _Plan(first["input_ids"], first["attention_mask"], table)

    @staticmethod
    def _decline(text: str, height: int, width: int, why: str) -> None:
        log.debug("running the processor per image for %dx%d images: %s", height, width, why)
        return None


def _all_levels_image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A random (H, W, 3) uint8 image in which every channel takes all 256 levels."""
    n = height * width
    channels = [rng.permutation(np.resize(np.arange(256, dtype=np.uint8), n)) for _ in range(3)]
    return np.stack(channels, axis=-1).reshape(height, width, 3)
