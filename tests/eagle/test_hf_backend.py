"""The in-process transformers backend on the probe model (the shipped checkpoint when present,
else a freshly initialised one: these tests check plumbing, not answer quality)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eagle import Eagle, EfficientSearch, ExactSearch, GridSegmenter
from eagle.types import Backend, GenerationRequest, ScoreRequest

pytestmark = pytest.mark.model

CHECKPOINT = Path(__file__).resolve().parents[2] / "probe" / "checkpoint"


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    from eagle.backends.hf import HFBackend

    if (CHECKPOINT / "config.json").exists():
        return HFBackend.from_pretrained(CHECKPOINT)
    from probe.model import build_untrained, save_checkpoint

    path = tmp_path_factory.mktemp("probe-untrained")
    save_checkpoint(*build_untrained(), path)
    return HFBackend.from_pretrained(path)


@pytest.fixture(scope="module")
def scene():
    from probe.world import make_scene

    return make_scene(seed=11, index=2)


def test_backend_satisfies_the_protocol_and_tokenises_at_the_boundary(backend):
    assert isinstance(backend, Backend)
    yes = backend.answer_token_ids("Is there a star in the image?", "Yes")
    assert yes == (backend.token_id("Yes"),)
    assert backend.decode(yes).strip() == "Yes"
    caption = "a circle, a star and a moon."
    ids = backend.answer_token_ids("Describe the image.", caption)
    assert backend.decode(ids).strip() == caption
    with pytest.raises(ValueError, match="not one"):
        backend.token_id("circle star")


def _request(backend):
    ids = backend.answer_token_ids("Describe the image.", "a circle, a star and a moon.")
    return ScoreRequest(
        prompt="Describe the image.",
        answer_ids=ids,
        target_positions=(0, 3, 4),
        target_ids=(ids[0], ids[3], backend.token_id("moon")),  # last one is a counter token
    )


def _reference_scores(backend, images, request):
    """One image at a time, full answer (no truncation), all logits, KV cache on: the slow way."""
    import torch

    text = backend.prompt_text(request.prompt)
    rows = []
    for im in images:
        inputs = backend._inputs([text], im[None])
        n_prompt = inputs["input_ids"].shape[1]
        ids = torch.cat([inputs["input_ids"], torch.tensor([list(request.answer_ids)])], dim=1)
        inputs["attention_mask"] = torch.ones_like(ids)
        inputs["input_ids"] = ids
        with torch.inference_mode():
            logp = torch.log_softmax(backend.model(**inputs).logits[0].double(), -1)
        rows.append(
            [
                float(logp[n_prompt + p - 1, t].exp())
                for p, t in zip(request.target_positions, request.target_ids, strict=True)
            ]
        )
    return np.array(rows)


def test_score_matches_unbatched_reference_and_batch_size_never_changes_it(backend, scene):
    from eagle.backends.hf import HFBackend

    request = _request(backend)
    rng = np.random.default_rng(0)
    images = np.stack([scene.image * (rng.random(scene.image.shape[:2]) < 0.5)[..., None] for _ in range(5)])
    images = images.astype(np.uint8)
    ref = _reference_scores(backend, images, request)
    for bs in (1, 2, 3, 5, None):
        b = HFBackend(backend.model, processor=backend.processor, batch_size=bs)
        got = b.score(images, request)
        assert got.shape == (5, 3) and got.dtype == np.float64
        np.testing.assert_allclose(got, ref, atol=1e-6)
    assert not np.allclose(ref[0], ref[1])  # the images really differ to the model


def test_explanations_do_not_depend_on_batch_size(backend, scene):
    from eagle.backends.hf import HFBackend

    labels = GridSegmenter(rows=2, cols=3).segment(scene.image)
    request = _request(backend)
    for search in (ExactSearch(), EfficientSearch(search_scope=2, pending_samples=2, update_step=2)):
        results = []
        for bs in (1, 2, 3, 6):
            b = HFBackend(backend.model, processor=backend.processor, batch_size=bs)
            results.append(Eagle(b, search=search).explain(scene.image, labels, request))
        for other in results[1:]:
            assert other.order.tolist() == results[0].order.tolist()
            np.testing.assert_allclose(other.insertion, results[0].insertion, atol=1e-6)
            np.testing.assert_allclose(other.deletion, results[0].deletion, atol=1e-6)
            # The map is a ratio of gain sums: float32 reduction-order noise in the scores (~1e-7,
            # BLAS blocks by batch size) is amplified there, so it gets a looser bound.
            np.testing.assert_allclose(other.region_scores, results[0].region_scores, atol=1e-4)


def test_generate_batched_equals_one_by_one_with_left_padding(backend, scene):
    from eagle.backends.hf import HFBackend

    requests = [
        GenerationRequest(image=scene.image, prompt="Describe the image.", max_new_tokens=6, request_id="a"),
        GenerationRequest(image=scene.image // 2, prompt="Is there a star in the image?", max_new_tokens=3),
        GenerationRequest(image=scene.image, prompt="Is there an arrow in the image?", max_new_tokens=3),
    ]
    batched = HFBackend(backend.model, processor=backend.processor, batch_size=3).generate(requests)
    single = HFBackend(backend.model, processor=backend.processor, batch_size=1).generate(requests)
    for a, b, r in zip(batched, single, requests, strict=True):
        assert a.token_ids == b.token_ids and a.finish_reason == b.finish_reason
        np.testing.assert_allclose(a.logprobs, b.logprobs, atol=1e-4)
        assert len(a.token_ids) <= r.max_new_tokens and a.finish_reason in ("stop", "length")
        assert a.text == backend.decode(a.token_ids)
    assert batched[0].request_id == "a"
    # the logprobs are the model's own: re-scoring the answer gives the same probabilities
    a = batched[1]
    if a.token_ids:
        positions = tuple(range(len(a.token_ids)))
        req = ScoreRequest(
            prompt=requests[1].prompt,
            answer_ids=a.token_ids,
            target_positions=positions,
            target_ids=a.token_ids,
        )
        np.testing.assert_allclose(
            np.log(backend.score(requests[1].image[None], req)[0]), a.logprobs, atol=1e-4
        )


def test_score_rejects_bad_images(backend):
    with pytest.raises(ValueError, match="uint8 batch"):
        backend.score(np.zeros((2, 8, 8, 3), np.float32), _request(backend))
