"""Pillow's resize of masked images, computed from the image's regions instead of each masked image.

A masked image shows some regions of one image and is black elsewhere. Pillow resizes an 8-bit image
in two separable passes (horizontal, then vertical), each output value being
`clip8((2**21 + sum_i k_i * v_i) >> 22)` over a small window of inputs with fixed integer weights
`k_i` (`src/libImaging/Resample.c`). So an output value whose window (through both passes) lies in
a single region is either that value of the resized full image (region kept) or 0 (removed); only
values whose window straddles a region boundary depend on the mask, and for those the sum splits
into one partial sum per region, which is fixed for the image. `MaskedResize` precomputes, once per
(image, label map): the resized full image, which outputs are single-region, and the per-region
partial sums of the others as sparse matrices of integers; a batch of keep rows then costs three
sparse products and one output-size assembly, instead of composing and resizing every full-size
masked image.

It reproduces Pillow bit for bit only if its weights are Pillow's: `MaskedResize.build` checks the
result against `PIL.Image.resize` on masked images of the real image (every region kept, none, and
alternating ones) and returns None when they differ, so a caller falls back to composing and
resizing. Every sum is of integers below 2**40, exact in float64 (which scipy multiplies ~4x faster
than int64); no value is ever approximated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

_PRECISION = 22  # Pillow's PRECISION_BITS for 8-bit images
_HALF = 1 << (_PRECISION - 1)

# PIL.Image.Resampling values (NEAREST = 0 is not a convolution: not handled) -> (filter, support).
_LANCZOS, _BILINEAR, _BICUBIC, _BOX, _HAMMING = 1, 2, 3, 4, 5


def _box(x: float) -> float:
    return 1.0 if -0.5 < x <= 0.5 else 0.0


def _bilinear(x: float) -> float:
    x = abs(x)
    return 1.0 - x if x < 1.0 else 0.0


def _hamming(x: float) -> float:
    x = abs(x)
    if x == 0.0:
        return 1.0
    if x >= 1.0:
        return 0.0
    x = x * math.pi
    return math.sin(x) / x * (float(np.float32(0.54)) + float(np.float32(0.46)) * math.cos(x))


def _bicubic(x: float) -> float:
    a = -0.5
    x = abs(x)
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    if x < 2.0:
        return (((x - 5) * x + 8) * x - 4) * a
    return 0.0


def _sinc(x: float) -> float:
    if x == 0.0:
        return 1.0
    x = x * math.pi
    return math.sin(x) / x


def _lanczos(x: float) -> float:
    return _sinc(x) * _sinc(x / 3) if -3.0 <= x < 3.0 else 0.0


_FILTERS = {_BOX: (_box, 0.5), _BILINEAR: (_bilinear, 1.0), _HAMMING: (_hamming, 1.0),
            _BICUBIC: (_bicubic, 2.0), _LANCZOS: (_lanczos, 3.0)}  # fmt: skip


def pass_weights(in_size: int, out_size: int, resample: int) -> tuple[np.ndarray, np.ndarray]:
    """Pillow's integer weights of one pass: (start (out,), weights (out, k) int64), output j reading
    inputs start[j] .. start[j] + k - 1 (weights past the window are 0). An unchanged size is no pass
    (Pillow skips it): the identity, written as one weight 2**22 per output."""
    if in_size == out_size:
        return np.arange(out_size), np.full((out_size, 1), 1 << _PRECISION, np.int64)
    filt, base_support = _FILTERS[resample]
    scale = float(in_size) / out_size
    filterscale = max(scale, 1.0)
    support = base_support * filterscale
    ksize = int(math.ceil(support)) * 2 + 1
    starts = np.zeros(out_size, np.int64)
    weights = np.zeros((out_size, ksize), np.int64)
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        ss = 1.0 / filterscale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size) - xmin
        w = [filt((x + xmin - center + 0.5) * ss) for x in range(xmax)]
        total = 0.0
        for v in w:
            total += v
        if total != 0.0:
            w = [v / total for v in w]
        starts[xx] = xmin
        for x, v in enumerate(w):
            weights[xx, x] = int(-0.5 + v * (1 << _PRECISION)) if v < 0 else int(0.5 + v * (1 << _PRECISION))
    return starts, weights


def _clip8_float(sums: np.ndarray) -> np.ndarray:
    """Pillow's clip8 of exact integer sums held in float64 (the rounding half not yet added)."""
    values = sums.astype(np.int64)  # exact: the sums are integers
    values += _HALF
    values >>= _PRECISION
    np.clip(values, 0, 255, out=values)
    return values.astype(np.uint8)


def _span(starts: np.ndarray, used: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last input index each output reads with a non-zero weight."""
    first = used.argmax(axis=1)
    last = used.shape[1] - 1 - used[:, ::-1].argmax(axis=1)
    return starts + first, starts + last


def _windows(starts: np.ndarray, weights: np.ndarray, in_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Input index per (output, tap), clamped into range, and whether the tap is used (weight != 0
    and inside the window)."""
    taps = starts[:, None] + np.arange(weights.shape[1])[None, :]
    used = (weights != 0) & (taps < in_size)
    return np.minimum(taps, in_size - 1), used


@dataclass(frozen=True)
class MaskedResize:
    """`PIL.Image.resize` of the masked variants of one image, from keep rows (see the module doc)."""

    size: tuple[int, int]  # output (height, width)
    full: np.ndarray  # (h, w, 3) uint8: the resized full image
    region3: np.ndarray  # (h * w * 3,) intp: the one region each output value reads (any, if several)
    mixed: np.ndarray  # (q,) intp: flat output pixels that read several regions
    # Sparse float64 matrices of exact integers (transposed: a dense batch multiplies them from the left).
    h_partial: Any  # (n, m * 3): horizontal-pass partial sums per region of the mixed intermediate values
    v_partial: Any  # (n, q * 3): vertical-pass sums per region over single-region intermediate values
    v_mixed: Any  # (m * 3, q * 3): vertical weights on the mixed intermediate values

    @classmethod
    def build(
        cls, image: np.ndarray, labels: np.ndarray, size: tuple[int, int], resample: int
    ) -> MaskedResize | None:
        """The plan for `image` (H, W, 3) uint8 with `labels` (H, W) resized to `size` (h, w) with
        Pillow filter `resample`; None unless it reproduces Pillow on masked images of this image."""
        if resample not in _FILTERS or image.ndim != 3 or image.shape[2] != 3:
            return None
        try:
            plan = cls._precompute(np.ascontiguousarray(image, np.uint8), np.asarray(labels), size, resample)
        except (MemoryError, ValueError):
            return None
        return plan if plan._reproduces_pillow(image, labels, resample) else None

    @classmethod
    def _precompute(
        cls, image: np.ndarray, labels: np.ndarray, size: tuple[int, int], resample: int
    ) -> MaskedResize:
        from PIL import Image
        from scipy import sparse

        height, width = labels.shape
        h, w = size
        n = int(labels.max()) + 1
        # The full image's passes from Pillow itself (a width-only resize is exactly its first pass).
        full_h = np.asarray(Image.fromarray(image).resize((w, height), resample=resample))  # (H, w, 3)
        full = np.asarray(Image.fromarray(image).resize((w, h), resample=resample))
        # Horizontal pass: which intermediate values read one region only.
        x_start, kx = pass_weights(width, w, resample)
        x_tap, x_used = _windows(x_start, kx, width)  # (w, kx)
        lo, hi = _span(x_start, x_used)
        changes = np.zeros((height, width), np.int32)
        changes[:, 1:] = labels[:, 1:] != labels[:, :-1]
        changes = changes.cumsum(axis=1)
        h_single = changes[:, hi] == changes[:, lo]  # (H, w)
        h_region = np.where(h_single, labels[:, lo], -1)
        # Mixed intermediate values: one partial sum per (value, channel, region) of their window.
        my, mx = np.nonzero(~h_single)
        m = len(my)
        mixed_index = np.full((height, w), -1, np.int64)
        mixed_index[my, mx] = np.arange(m)
        taps = x_tap[mx]  # (m, kx)
        contrib = image[my[:, None], taps].astype(np.int64) * kx[mx][..., None]  # (m, kx, 3)
        rows = np.broadcast_to(np.arange(m)[:, None, None] * 3 + np.arange(3), contrib.shape)
        cols = np.broadcast_to(labels[my[:, None], taps][..., None], contrib.shape)
        sel = np.broadcast_to(x_used[mx][..., None], contrib.shape)
        h_partial = sparse.csr_matrix(
            (contrib[sel], (rows[sel], cols[sel])), shape=(m * 3, n), dtype=np.int64
        )
        # Vertical pass: which outputs read single-region intermediate values of one region only.
        y_start, ky = pass_weights(height, h, resample)
        y_tap, y_used = _windows(y_start, ky, height)  # (h, ky)
        lo, hi = _span(y_start, y_used)
        changes = np.zeros((height, w), np.int32)
        changes[1:] = h_region[1:] != h_region[:-1]
        changes = changes.cumsum(axis=0)
        single = (changes[hi] == changes[lo]) & (h_region[lo] >= 0)  # (h, w)
        region = np.where(single, h_region[lo], 0).reshape(-1)
        mixed = np.flatnonzero(~single)
        q = len(mixed)
        qy, qx = np.divmod(mixed, w)
        tap_y = y_tap[qy]  # (q, ky)
        weight = np.where(y_used[qy], ky[qy], 0)  # (q, ky)
        tap_mixed = mixed_index[tap_y, qx[:, None]]  # (q, ky): -1 where the value reads one region
        shape = (q, ky.shape[1], 3)
        out_rows = np.broadcast_to(np.arange(q)[:, None, None] * 3 + np.arange(3), shape)
        pure = np.broadcast_to(((tap_mixed < 0) & (weight != 0))[..., None], shape)
        pure_vals = full_h[tap_y, qx[:, None]].astype(np.int64) * weight[..., None]  # (q, ky, 3)
        pure_cols = np.broadcast_to(h_region[tap_y, qx[:, None]][..., None], shape)
        v_partial = sparse.csr_matrix(
            (pure_vals[pure], (out_rows[pure], pure_cols[pure])), shape=(q * 3, n), dtype=np.int64
        )
        mix = np.broadcast_to(((tap_mixed >= 0) & (weight != 0))[..., None], shape)
        mix_cols = tap_mixed[..., None] * 3 + np.arange(3)
        mix_vals = np.broadcast_to(weight[..., None], shape)
        v_mixed = sparse.csr_matrix(
            (mix_vals[mix], (out_rows[mix], mix_cols[mix])), shape=(q * 3, m * 3), dtype=np.int64
        )
        return cls(
            size=(h, w),
            full=full,
            region3=np.repeat(region, 3).astype(np.intp),
            mixed=mixed.astype(np.intp),
            h_partial=h_partial.T.astype(np.float64).tocsr(),
            v_partial=v_partial.T.astype(np.float64).tocsr(),
            v_mixed=v_mixed.T.astype(np.float64).tocsr(),
        )

    def __call__(self, keep: np.ndarray) -> np.ndarray:
        """The resized masked images (B, h, w, 3) uint8 for keep rows (B, n) bool."""
        keep = np.asarray(keep, bool)
        b = len(keep)
        h, w = self.size
        # Sums of integers below 2**40 are exact in float64 (and scipy's float products are faster).
        kf = keep.astype(np.float64)  # (B, n)
        inter = _clip8_float(kf @ self.h_partial).astype(np.float64)  # (B, m * 3): mixed intermediate values
        sums = kf @ self.v_partial + inter @ self.v_mixed  # (B, q * 3)
        out = np.multiply(self.full.reshape(1, -1), keep[:, self.region3], dtype=np.uint8)  # (B, h * w * 3)
        out.reshape(b, h * w, 3)[:, self.mixed] = _clip8_float(sums).reshape(b, len(self.mixed), 3)
        return out.reshape(b, h, w, 3)

    def _reproduces_pillow(self, image: np.ndarray, labels: np.ndarray, resample: int) -> bool:
        from PIL import Image

        from eagle.masking import compose

        n = int(labels.max()) + 1
        ids = np.arange(n)
        keep = np.stack([ids >= 0, ids < 0, ids % 2 == 0, ids % 3 == 1])
        h, w = self.size
        masked = compose(image, labels, keep)
        want = np.stack([np.asarray(Image.fromarray(im).resize((w, h), resample=resample)) for im in masked])
        return bool(np.array_equal(self(keep), want))
