"""The shortcut for processor inputs: exact where it applies (per-pixel tables, re-layouts, padding,
resizes), declines everywhere else. Real processors of several families are checked in
tests/backends/test_families.py."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from eagle.backends.shared_prompt_inputs import SharedPromptInputs, run_processor  # noqa: E402


class FakeProcessor:
    """A processor with a configurable pixel transform `pixels(img uint8 HWC) -> float array` and,
    like transformers' PIL image processors, an `image_processor.resize` it calls first when the
    image is not `size` (height, width)."""

    def __init__(self, pixels, extra_key=False, ids_from_image=False, size=None, resample=3) -> None:
        self.pixels = pixels
        self.extra_key = extra_key
        self.ids_from_image = ids_from_image
        self.image_processor = FakeImageProcessor(size, resample)
        self.calls = 0

    def __call__(self, text, images, return_tensors="pt", **kw):
        self.calls += 1
        assert all(isinstance(im, list) and len(im) == 1 for im in images), "one list of images per sample"
        arrays = [self.image_processor.preprocess(np.asarray(im[0])) for im in images]
        n_tokens = 4 + (int(arrays[0].mean() > 127) if self.ids_from_image else 0)
        out = {
            "input_ids": torch.arange(n_tokens).repeat(len(text), 1),
            "attention_mask": torch.ones(len(text), n_tokens, dtype=torch.long),
            "pixel_values": torch.from_numpy(np.stack([self.pixels(a) for a in arrays]).astype(np.float32)),
        }
        if self.extra_key:
            out["image_sizes"] = torch.tensor([a.shape[:2] for a in arrays])
        return out


class FakeImageProcessor:
    def __init__(self, size, resample) -> None:
        self.size, self.resample, self.resized = size, resample, 0

    def resize(self, image, size, resample=None):  # channels first, like transformers' PIL backend
        from PIL import Image

        self.resized += 1
        pil = Image.fromarray(image.transpose(1, 2, 0)).resize((size[1], size[0]), resample=resample)
        return np.asarray(pil).transpose(2, 0, 1)

    def preprocess(self, image):
        if self.size is not None and image.shape[:2] != self.size:
            chw = self.resize(image.transpose(2, 0, 1), self.size, resample=self.resample)
            image = chw.transpose(1, 2, 0)
        return image


def gamma(img):  # per-pixel and non-affine: the table must still reproduce it exactly
    return ((img.astype(np.float64) / 255.0) ** 2.2).astype(np.float32).transpose(2, 0, 1) - 0.3


def normalise(img):  # CLIP-style: a different affine map per channel
    mean, std = np.array([0.48, 0.46, 0.41]), np.array([0.27, 0.26, 0.28])
    return ((img / 255.0 - mean) / std).astype(np.float32).transpose(2, 0, 1)


def patchify(img):  # Qwen-VL-style: 2x2 patches flattened, each duplicated in time
    x = normalise(img)  # (3, H, W)
    c, h, w = x.shape
    p = x.reshape(c, h // 2, 2, w // 2, 2).transpose(1, 3, 0, 2, 4).reshape(h // 2 * w // 2, c * 4)
    return np.concatenate([p, p], axis=1)


def padded(img):  # a crop and a constant border
    x = normalise(img)[:, 1:-1, 2:]
    return np.pad(x, ((0, 0), (0, 3), (0, 1)), constant_values=-1.5)


def blur(img):  # mixes neighbouring pixels: not a gather
    x = img.astype(np.float32)
    return ((x + np.roll(x, 1, axis=1)) / 510.0).transpose(2, 0, 1)


def images(n=5, h=32, w=24, seed=0):
    rng = np.random.default_rng(seed)
    out = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    out[0] = 0
    out[1] = 255
    return out


def assert_same_as_processor(proc, batch, text="prompt"):
    fast = SharedPromptInputs(proc)(text, batch)
    assert fast is not None, "expected a verified shortcut"
    slow = run_processor(proc, [text] * len(batch), list(batch))
    assert set(fast) == set(slow)
    for key in slow:
        assert fast[key].shape == slow[key].shape, key
        assert torch.equal(fast[key], slow[key]), key


@pytest.mark.parametrize(
    "pixels", [gamma, normalise, patchify, padded], ids=["gamma", "clip", "patches", "pad"]
)
def test_per_pixel_maps_and_relayouts_are_reproduced_bit_for_bit(pixels):
    assert_same_as_processor(FakeProcessor(pixels), images())


def test_extra_image_independent_outputs_are_kept():
    assert_same_as_processor(FakeProcessor(gamma, extra_key=True), images())


def test_the_processors_own_resize_is_done_once_per_image_and_nothing_else_runs_per_image():
    proc = FakeProcessor(normalise, size=(20, 16))
    batch = images(n=6, h=64, w=48)
    assert_same_as_processor(proc, batch)
    fast = SharedPromptInputs(proc)
    fast("prompt", batch)
    calls, resized = proc.calls, proc.image_processor.resized
    fast("prompt", images(n=6, h=64, w=48, seed=1))
    assert proc.calls == calls and proc.image_processor.resized == resized  # PIL directly, not the processor
    fast("another prompt", images(n=6, h=64, w=48, seed=2))
    assert proc.calls == calls + 1  # the new prompt's token ids: one processor call, then cached


def test_plans_are_per_size_and_token_ids_per_prompt():
    proc = FakeProcessor(gamma)
    fast = SharedPromptInputs(proc)
    fast("prompt", images())
    calls = proc.calls
    fast("prompt", images(seed=1))
    assert proc.calls == calls
    fast("prompt", images(h=40))
    assert proc.calls > calls + 2  # a new size is learned and verified anew


@pytest.mark.parametrize(
    "proc",
    [FakeProcessor(blur), FakeProcessor(gamma, ids_from_image=True)],
    ids=["neighbours", "ids-depend-on-image"],
)
def test_declines_whenever_no_shortcut_reproduces_the_processor(proc):
    assert SharedPromptInputs(proc)("prompt", images()) is None


def test_declines_images_with_too_few_pixels_to_show_every_level():
    assert SharedPromptInputs(FakeProcessor(gamma))("prompt", images(h=8, w=8)) is None


@pytest.mark.model
def test_probe_processor_inputs_are_identical_to_the_processors_at_its_size_and_resized():
    from eagle.backends.hf import HFBackend
    from probe.model import CHECKPOINT_DIR

    backend = HFBackend(CHECKPOINT_DIR)
    text = backend.prompt_text("Is there a star in the image?")
    for h, w in [(128, 128), (96, 128), (512, 512)]:
        batch = images(n=4, h=h, w=w, seed=3)
        fast = backend._shared_inputs(text, batch)
        assert fast is not None, f"no shortcut for the probe's CLIP processor at {h}x{w}"
        slow = backend._inputs([text] * len(batch), batch)
        assert set(fast) == set(slow)
        for key in slow:
            assert torch.equal(fast[key], slow[key]), (key, h, w)


def masked_batch(h=64, w=48, seed=4):
    from eagle.regions import SlicoSegmenter
    from eagle.types import MaskedImages

    image = images(n=3, h=h, w=w, seed=seed)[2]
    labels = SlicoSegmenter(n_segments=10).segment(image)
    keep = np.random.default_rng(seed).random((5, int(labels.max()) + 1)) < 0.5
    keep[0] = True
    return MaskedImages(image, labels, keep)


@pytest.mark.parametrize("pixels", [normalise, patchify], ids=["clip", "patches"])
def test_masked_batches_are_resized_from_their_regions_and_equal_the_processor_on_composed_images(pixels):
    proc = FakeProcessor(pixels, size=(20, 16))
    masked = masked_batch()
    fast = SharedPromptInputs(proc)
    build = fast.masked("prompt", masked)
    assert build is not None
    resized = proc.image_processor.resized
    got = build(masked.keep)
    assert proc.image_processor.resized == resized  # no masked image went through a resize
    want = run_processor(proc, ["prompt"] * len(masked), list(masked.compose()))
    assert set(got) == set(want)
    for key in want:
        assert torch.equal(got[key], want[key]), key
    rows = build(masked.keep[2:4])  # any subset of the rows (the backend's batches)
    assert torch.equal(rows["pixel_values"], want["pixel_values"][2:4])


def test_masked_batches_at_the_processors_own_size_and_without_a_shortcut():
    masked = masked_batch(h=20, w=16)
    proc = FakeProcessor(normalise, size=(20, 16))
    got = SharedPromptInputs(proc).masked("prompt", masked)(masked.keep)
    want = run_processor(proc, ["prompt"] * len(masked), list(masked.compose()))
    assert torch.equal(got["pixel_values"], want["pixel_values"])
    assert SharedPromptInputs(FakeProcessor(blur)).masked("prompt", masked_batch()) is None


@pytest.mark.model
def test_probe_scores_of_masked_512_px_images_equal_the_processor_path():
    """The in-process backend scores masked 512 px images from their regions (never composing them)
    exactly as the processor scores the composed images, which is what a vLLM server computes."""
    from PIL import Image

    from eagle.backends.hf import HFBackend
    from eagle.regions import SlicoSegmenter
    from eagle.types import MaskedImages, ScoreRequest
    from probe.model import CHECKPOINT_DIR
    from probe.world import make_scene

    fast, processor = HFBackend(CHECKPOINT_DIR), HFBackend(CHECKPOINT_DIR, fast_inputs=False)
    scene = Image.fromarray(make_scene(4242, 3, "heldout").image)
    image = np.asarray(scene.resize((512, 512), Image.BICUBIC))
    labels = SlicoSegmenter(n_segments=24).segment(image)
    keep = np.random.default_rng(0).random((7, int(labels.max()) + 1)) < 0.5
    keep[0], keep[1] = True, False
    yes, no = fast.token_id("Yes"), fast.token_id("No")
    request = ScoreRequest(prompt="Is there a star in the image?", answer_ids=(yes,),
                           target_positions=(0, 0), target_ids=(yes, no))  # fmt: skip
    masked = MaskedImages(image, labels, keep)
    got = fast.score_masked(masked, request)
    assert fast._shared_inputs._last_masked[3] is not None, "the region-wise resize was not used"
    want = processor.score(masked.compose(), request)
    assert np.abs(np.log(got) - np.log(want)).max() <= 1e-6
    assert np.array_equal(got, want)  # the same tensors reach the model: bit-identical
