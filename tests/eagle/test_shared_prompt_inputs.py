"""The pixel-table fast path for processor inputs: exact where it applies, declines everywhere else."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from eagle.backends.shared_prompt_inputs import SharedPromptInputs  # noqa: E402


class FakeProcessor:
    """A processor with a configurable pixel transform: `pixels(img uint8 HWC) -> float CHW`."""

    def __init__(self, pixels, extra_key: bool = False, ids_from_image: bool = False) -> None:
        self.pixels = pixels
        self.extra_key = extra_key
        self.ids_from_image = ids_from_image
        self.calls = 0

    def __call__(self, text, images, return_tensors="pt", **kw):
        self.calls += 1
        arrays = [np.asarray(im) for im in images]
        n_tokens = 4 + (int(arrays[0].mean() > 127) if self.ids_from_image else 0)
        out = {
            "input_ids": torch.arange(n_tokens).repeat(len(text), 1),
            "attention_mask": torch.ones(len(text), n_tokens, dtype=torch.long),
            "pixel_values": torch.from_numpy(np.stack([self.pixels(a) for a in arrays]).astype(np.float32)),
        }
        if self.extra_key:
            out["image_sizes"] = torch.tensor([a.shape[:2] for a in arrays])
        return out


def gamma(img):  # per-pixel and non-affine: the table must still reproduce it exactly
    return ((img.astype(np.float64) / 255.0) ** 2.2).astype(np.float32).transpose(2, 0, 1) - 0.3


def blur(img):  # mixes neighbouring pixels: not a table
    x = img.astype(np.float32)
    return ((x + np.roll(x, 1, axis=1)) / 510.0).transpose(2, 0, 1)


def images(n=5, h=32, w=24, seed=0):
    rng = np.random.default_rng(seed)
    out = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    out[0] = 0
    out[1] = 255
    return out


def test_per_pixel_transform_is_reproduced_bit_for_bit_and_the_processor_runs_once_per_size():
    proc = FakeProcessor(gamma)
    fast = SharedPromptInputs(proc)
    batch = images()
    got = fast("prompt", batch)
    assert got is not None
    np.testing.assert_array_equal(got["pixel_values"].numpy(), np.stack([gamma(im) for im in batch]))
    assert got["input_ids"].shape == (5, 4) and got["attention_mask"].shape == (5, 4)
    calls = proc.calls
    fast("prompt", images(seed=1))
    assert proc.calls == calls  # the plan is cached per (prompt, size)
    fast("prompt", images(h=40))
    assert proc.calls > calls  # a new size is verified anew


@pytest.mark.parametrize(
    "proc",
    [
        FakeProcessor(blur),
        FakeProcessor(gamma, extra_key=True),
        FakeProcessor(gamma, ids_from_image=True),
        FakeProcessor(lambda im: gamma(im)[:, ::2]),  # resized: output size differs from the input
    ],
    ids=["neighbours", "extra-output", "ids-depend-on-image", "resize"],
)
def test_declines_whenever_the_processor_is_not_a_pixel_table(proc):
    assert SharedPromptInputs(proc)("prompt", images()) is None


def test_declines_images_smaller_than_the_level_count():
    assert SharedPromptInputs(FakeProcessor(gamma))("prompt", images(h=8, w=8)) is None


@pytest.mark.model
def test_probe_processor_inputs_are_identical_to_the_processors():
    from eagle.backends.hf import HFBackend

    backend = HFBackend.from_pretrained(None)
    text = backend.prompt_text("Is there a star in the image?")
    batch = images(n=6, h=128, w=128, seed=3)
    fast = backend._shared_inputs(text, batch)
    assert fast is not None, "the probe's CLIP processor is a per-pixel table at 128 px"
    slow = backend._inputs([text] * len(batch), batch)
    assert set(fast) == set(slow)
    for key in slow:
        assert torch.equal(fast[key], slow[key]), key
    # Images not at the processor's size are resized by it: the fast path must step aside.
    assert backend._shared_inputs(text, images(n=2, h=96, w=128)) is None
