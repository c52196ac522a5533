"""Model inputs for many same-size images under one prompt, without running the processor per image.

EAGLE scores hundreds of masked variants of one image under one prompt. Through a Hugging Face
processor each variant costs a PIL round trip, a resize, a normalisation and often a re-layout into
patches (~0.7 ms per 128 px image on one CPU core, as much as a small model's batched forward; far
more at 512 px). Most image processors are, at a given input size, a fixed pipeline:

    resize (PIL, uint8)  ->  crop / split / patchify (a fixed re-arrangement)  ->  rescale + normalise
                                                                                   (a per-channel table)

so every output value is `table[group][resized_pixel[source]]` for a fixed `source` index and table
group per output element. This module learns that map from the processor itself -- the resize it
performs (by recording the processor's own `resize` call), the `source` index (from images whose
pixels spell out their own positions in base 256) and the tables (from those same images) -- then
checks that it reproduces the processor's output bit for bit on two random images with every level
and on the black image every EAGLE run scores, and on a two-image batch. After that a batch costs
one PIL resize per image (none when the image is already at the processor's size) and two numpy
gathers. The prompt's token ids are the processor's own, computed once per prompt and image size.

When the check fails the module falls back a step: if the processor's output depends on the input
only through its first resize (checked the same way), the resized images go through the processor,
which is cheaper for large inputs; otherwise it declines and the caller runs the processor. No path
ever changes a value, only how fast it is computed.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from eagle.backends.masked_resize import MaskedResize
from eagle.masking import compose
from eagle.types import MaskedImages

log = logging.getLogger(__name__)

_PIXELS = "pixel_values"
_LOOKUP_CHUNK = 4  # images per gather: keeps the index arrays in cache


def run_processor(processor: Any, texts: Sequence[str], images: Sequence[np.ndarray]) -> dict[str, Any]:
    """The processor's tensors for `texts[i]` with image `images[i]` (RGB uint8 arrays).

    The one place this backend calls a processor: the text is the chat template's rendering, which
    already holds every special token the model expects (vLLM's chat path adds none either), so the
    tokenizer adds none (`add_special_tokens=False`: no second BOS); and images go one list per
    sample, the form every processor accepts (Gemma3 rejects a flat list for a batch of texts).
    """
    from PIL import Image

    nested = [[Image.fromarray(np.ascontiguousarray(im))] for im in images]
    out = processor(
        text=list(texts), images=nested, return_tensors="pt", padding=True, add_special_tokens=False
    )
    return {k: v for k, v in out.items() if k != "labels"}  # PaliGemma's processor adds training labels


@dataclass(frozen=True)
class _Resize:
    """The processor's first resize of the input image: PIL, uint8, to `size` (height, width)."""

    size: tuple[int, int]
    resample: int

    def __call__(self, images: np.ndarray) -> np.ndarray:
        h, w = self.size
        out = np.empty((len(images), h, w, 3), np.uint8)

        def one(i: int) -> None:
            out[i] = np.asarray(_pil(images[i]).resize((w, h), resample=self.resample))

        # PIL releases the GIL while it resamples: the images of a batch resize on every core.
        list(_resize_pool().map(one, range(len(images))))
        return out


def _pil(image: np.ndarray) -> Any:
    from PIL import Image

    return Image.fromarray(image)


@cache
def _resize_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1), thread_name_prefix="resize")


@dataclass(frozen=True)
class _Gather:
    """`pixel_values` of one image as `table[offset + image.flat[source]]` over its (h, w, 3) pixels."""

    shape: tuple[int, ...]  # pixel_values of one image
    source: np.ndarray  # (m,) intp: flat index into the (h, w, 3) uint8 image, per output element
    offset: np.ndarray  # (m,) intp: 256 x the table group of each output element
    table: np.ndarray  # (groups * 256,) float32
    channel_tables: np.ndarray | None  # (3, 256) when the layout is plain (1, 3, h, w): faster lookup

    def __call__(self, images: np.ndarray) -> Any:
        import torch

        n = len(images)
        m = self.source.size
        out = np.empty((n, m), np.float32)
        if self.channel_tables is not None:
            planes = out.reshape(n, 3, -1)
            for c in range(3):
                # A uint8 level cannot leave the 256-entry row, so "clip" (which skips numpy's
                # bounds check) never changes a value; it makes the lookup ~1.5x faster.
                self.channel_tables[c].take(images[..., c].reshape(n, -1), out=planes[:, c], mode="clip")
        else:
            flat = images.reshape(n, -1)
            for start in range(0, n, _LOOKUP_CHUNK):
                part = flat[start : start + _LOOKUP_CHUNK]
                index = part.take(self.source, axis=1).astype(np.intp) + self.offset
                self.table.take(index, out=out[start : start + len(part)], mode="clip")
        return torch.from_numpy(out).reshape(n * self.shape[0], *self.shape[1:])


@dataclass(frozen=True)
class _Plan:
    """How inputs are built for one input image size."""

    resize: _Resize | None  # None: the processor does not resize images of this size
    gather: _Gather | None  # None: the (resized) images go through the processor


class SharedPromptInputs:
    """Processor-exact inputs for a batch of (B, H, W, 3) uint8 images sharing one prompt text.

    Call it with the prompt text and the batch; it returns the processor's dict of tensors, or None
    when no verified shortcut exists for this processor at this image size (then run the processor).
    """

    def __init__(self, processor: Any) -> None:
        self.processor = processor
        self._plans: dict[tuple[int, int], _Plan | None] = {}
        self._tokens: dict[tuple[str, int, int], dict[str, Any]] = {}
        self._lock = threading.RLock()
        self._last_masked: tuple[np.ndarray, np.ndarray, _Resize, MaskedResize | None] | None = None

    def __call__(self, text: str, images: np.ndarray) -> dict[str, Any] | None:
        _, height, width, _ = images.shape
        plan = self._plan_for(text, height, width)
        return None if plan is None else self._build(plan, text, images)

    def masked(self, text: str, masked: MaskedImages) -> Callable[[np.ndarray], dict[str, Any]] | None:
        """A builder of the processor's tensors for the masked images of keep rows (b, n) of `masked`
        (its image and label map), or None when no verified shortcut exists (then compose and run
        the processor). Where the processor resizes, the masked images are resized from their
        regions (`MaskedResize`, checked against Pillow on this image) and never composed at full
        size; at the processor's own size composing is all the work there is."""
        height, width = masked.image.shape[:2]
        plan = self._plan_for(text, height, width)
        if plan is None:
            return None
        if plan.resize is None:
            return lambda keep: self._build(plan, text, compose(masked.image, masked.labels, keep))
        resize = self._masked_resize(masked, plan.resize)
        if resize is None:
            return None
        return lambda keep: self._from_resized(plan, text, resize(keep), height, width)

    def _plan_for(self, text: str, height: int, width: int) -> _Plan | None:
        with self._lock:  # one plan per size, even when several threads score at once
            if (height, width) not in self._plans:
                self._plans[(height, width)] = self._plan(text, height, width)
            return self._plans[(height, width)]

    def _masked_resize(self, masked: MaskedImages, resize: _Resize) -> MaskedResize | None:
        """The region-wise resize of this image and label map (one cached: an explanation scores
        many batches of one image), or None when it does not reproduce Pillow on this image."""
        with self._lock:
            cached = self._last_masked
            if not (
                cached is not None
                and cached[2] == resize
                and np.array_equal(cached[0], masked.image)
                and np.array_equal(cached[1], masked.labels)
            ):
                built = MaskedResize.build(masked.image, masked.labels, resize.size, resize.resample)
                if built is None:
                    log.debug("masked %s: composing full-size images (no exact region-wise resize)", resize)
                cached = (masked.image.copy(), masked.labels.copy(), resize, built)
                self._last_masked = cached
            return cached[3]

    def _build(self, plan: _Plan, text: str, images: np.ndarray) -> dict[str, Any]:
        _, height, width, _ = images.shape
        if plan.resize is not None:
            images = plan.resize(images)
        return self._from_resized(plan, text, images, height, width)

    def _from_resized(
        self, plan: _Plan, text: str, images: np.ndarray, height: int, width: int
    ) -> dict[str, Any]:
        """Inputs from images already at the processor's resize (for `height` x `width` inputs)."""
        n = len(images)
        if plan.gather is None:
            return run_processor(self.processor, [text] * n, images)
        tokens = self._token_inputs(text, height, width)
        inputs = {k: v.repeat(n, *([1] * (v.dim() - 1))) for k, v in tokens.items()}
        inputs[_PIXELS] = plan.gather(images)
        return inputs

    def _token_inputs(self, text: str, height: int, width: int) -> dict[str, Any]:
        """Everything but the pixels for one image of this size: computed once per prompt and size."""
        key = (text, height, width)
        if key not in self._tokens:
            out = self._processor_one(text, np.zeros((height, width, 3), np.uint8))
            out.pop(_PIXELS)
            self._tokens[key] = out
        return self._tokens[key]

    def _processor_one(self, text: str, image: np.ndarray) -> dict[str, Any]:
        return run_processor(self.processor, [text], [image])

    # ---- learning and checking a plan ----------------------------------------------------------
    def _plan(self, text: str, height: int, width: int) -> _Plan | None:
        """The verified shortcut at this input size, or None (the reason is logged at debug level)."""
        rng = np.random.default_rng(0)
        probes = [_all_levels_image(rng, height, width) for _ in range(2)]
        probes.append(np.zeros((height, width, 3), np.uint8))
        with _ResizeRecorder(self.processor) as recorder:
            expected = [self._processor_one(text, probe) for probe in probes]
        if _PIXELS not in expected[0]:
            return _decline(height, width, f"processor outputs {sorted(expected[0])}, no {_PIXELS}")
        resize = recorder.first_resize_of(height, width)
        candidates = []
        gather = self._learn_gather(text, *(resize.size if resize else (height, width)))
        if gather is not None:
            candidates.append(_Plan(resize, gather))
        if resize is not None and resize.size[0] * resize.size[1] < height * width:
            candidates.append(_Plan(resize, None))  # the processor on smaller images
        for plan in candidates:
            if self._reproduces(plan, text, probes, expected):
                how = "a pixel gather" if plan.gather is not None else "the processor on resized images"
                log.debug("inputs for %dx%d images via %s (resize: %s)", height, width, how, plan.resize)
                return plan
        return _decline(height, width, "no shortcut reproduces the processor's output")

    def _reproduces(self, plan: _Plan, text: str, probes: list[np.ndarray], expected: list[dict]) -> bool:
        """Whether `plan` gives exactly the processor's tensors on each probe and on a two-probe batch."""
        for probe, want in zip(probes, expected, strict=True):
            if not _same(self._build(plan, text, probe[None]), want):
                return False
        pair = run_processor(self.processor, [text] * 2, probes[:2])
        return _same(self._build(plan, text, np.stack(probes[:2])), pair)

    def _learn_gather(self, text: str, height: int, width: int) -> _Gather | None:
        """The gather that maps an image of exactly this size (one the processor does not resize
        further) to the processor's pixel values, or None if its outputs are not such a gather."""
        n = height * width * 3
        if n < 768 or n > 256**3:
            return None  # too few positions to show every level in every channel / to spell them
        position = np.arange(n)
        spelled = [((position >> (8 * d)) & 255).astype(np.uint8).reshape(height, width, 3) for d in range(3)]
        black, white = np.zeros((height, width, 3), np.uint8), np.full((height, width, 3), 255, np.uint8)
        outs = [self._processor_one(text, im)[_PIXELS] for im in [black, white, *spelled]]
        if len({tuple(o.shape) for o in outs}) != 1 or not outs[0].dtype.is_floating_point:
            return None
        shape = tuple(outs[0].shape)
        lo, hi, *digits = (o.numpy().reshape(-1).astype(np.float32) for o in outs)
        # Output elements with the same (value at level 0, value at level 255) share a table.
        pairs, group = np.unique(np.stack([lo, hi], axis=1), axis=0, return_inverse=True)
        group = group.reshape(-1)
        tables = np.empty((len(pairs), 256), np.float32)
        for g, (at0, at255) in enumerate(pairs):
            members = group == g
            if at0 == at255:  # a constant (padding): any level maps to it
                tables[g] = at0
                continue
            levels = np.unique(digits[0][members])
            if levels.size != 256:
                return None
            tables[g] = levels if levels[0] == at0 else levels[::-1]
            if tables[g, 0] != at0 or tables[g, 255] != at255:
                return None
        source = np.zeros(lo.size, np.intp)
        for d, values in enumerate(digits):
            level = np.empty(lo.size, np.intp)
            for g in range(len(pairs)):
                members = group == g
                if pairs[g][0] == pairs[g][1]:
                    level[members] = 0
                    continue
                order = np.argsort(tables[g])
                at = np.searchsorted(tables[g], values[members], sorter=order)
                level[members] = order[np.minimum(at, 255)]
                if not np.array_equal(tables[g][level[members]], values[members]):
                    return None
            source += level << (8 * d)
        if source.max() >= n:
            return None
        offset = (group * 256).astype(np.intp)
        plain = shape == (1, 3, height, width) and np.array_equal(
            source, np.arange(n).reshape(height, width, 3).transpose(2, 0, 1).reshape(-1)
        )
        channel_tables = None
        if plain:
            per_channel = group.reshape(3, -1)  # (3, h * w): the plain lookup needs one table per channel
            if (per_channel == per_channel[:, :1]).all():
                channel_tables = tables[per_channel[:, 0]]
        return _Gather(shape, source, offset, tables.reshape(-1), channel_tables)


class _ResizeRecorder:
    """Records the first resize the image processor performs (its `resize` method, as the PIL
    backends of transformers call it), while the `with` block runs, on this thread only."""

    def __init__(self, processor: Any) -> None:
        self.image_processor = getattr(processor, "image_processor", None)
        self.calls: list[tuple[tuple[int, ...], tuple[int, ...], Any]] = []
        self._thread = threading.get_ident()

    def __enter__(self) -> _ResizeRecorder:
        ip = self.image_processor
        if ip is not None and callable(getattr(ip, "resize", None)):
            original = ip.resize

            def resize(*args: Any, **kw: Any) -> Any:
                out = original(*args, **kw)
                if threading.get_ident() == self._thread and isinstance(out, np.ndarray):
                    image = args[0] if args else kw.get("image")
                    resample = kw.get("resample", args[2] if len(args) > 2 else None)
                    self.calls.append((tuple(np.shape(image)), tuple(out.shape), resample))
                return out

            ip.resize = resize
        return self

    def __exit__(self, *exc: object) -> None:
        if self.image_processor is not None and "resize" in vars(self.image_processor):
            del self.image_processor.resize

    def first_resize_of(self, height: int, width: int) -> _Resize | None:
        """The first recorded resize of a channels-first (3, height, width) image, if any."""
        for before, after, resample in self.calls:
            if before == (3, height, width) and len(after) == 3 and after[0] == 3 and resample is not None:
                if after[1:] != (height, width):
                    return _Resize((int(after[1]), int(after[2])), int(resample))
                return None
        return None


def _same(got: dict[str, Any] | None, want: dict[str, Any]) -> bool:
    return got is not None and set(got) == set(want) and all(got[k].equal(want[k]) for k in want)


def _decline(height: int, width: int, why: str) -> None:
    log.debug("running the processor per image for %dx%d images: %s", height, width, why)
    return None


def _all_levels_image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A random (H, W, 3) uint8 image in which every channel takes all 256 levels (when it has room)."""
    n = height * width
    channels = [rng.permutation(np.resize(np.arange(256, dtype=np.uint8), n)) for _ in range(3)]
    return np.stack(channels, axis=-1).reshape(height, width, 3)
