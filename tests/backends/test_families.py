"""Real model families in-process: tiny random-weight checkpoints of Qwen2-VL, Qwen2.5-VL, LLaVA-1.5,
LLaVA-NeXT, InternVL, Idefics3, Gemma3, PaliGemma and Mistral3 (tests/support/tiny_families.py)
through the hf backend:
loading without torchvision, the prompt the chat template renders (no extra BOS), batches of
several images (Gemma3 wants one list per sample), processors that resize, the verified input
shortcut, dtype, and an explanation per family."""

from __future__ import annotations

import json

import numpy as np
import pytest

from eagle.types import Backend, GenerationRequest, ScoreRequest
from tests.support.tiny_families import FAMILIES

pytestmark = pytest.mark.model

QUESTION = "Is there a star in the image?"


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request, family_checkpoint):
    """(name, checkpoint path, backend) for each family, one at a time."""
    import torch

    from eagle.backends.hf import HFBackend

    torch.set_num_threads(1)
    path = family_checkpoint(request.param)
    return request.param, path, HFBackend(path, model_id=request.param)


def _request(backend) -> ScoreRequest:
    yes = backend.answer_token_ids(QUESTION, "Yes")
    return ScoreRequest(prompt=QUESTION, answer_ids=yes, target_positions=(0, 0),
                        target_ids=(yes[0], backend.token_id("No")))  # fmt: skip


def _images(n: int, size: tuple[int, int], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = rng.integers(0, 256, (n, *size, 3), dtype=np.uint8)
    out[1 % n] = 0
    return out


def test_loads_without_a_video_processor_and_describes_itself(family):
    name, _, backend = family
    assert isinstance(backend, Backend)
    assert not hasattr(backend.processor, "video_processor")  # would need torchvision
    info = backend.info()
    assert info["engine"] == "hf" and info["model"] == name and info["dtype"] == "float32"


def test_the_prompt_is_the_chat_templates_tokens_with_no_extra_bos(family):
    name, _, backend = family
    tok = backend.tokenizer
    image = _images(1, (FAMILIES[name].native_size,) * 2)[0]
    ids = backend.prompt_token_ids(image, QUESTION)
    text = backend.prompt_text(QUESTION)
    rendered = tok(text, add_special_tokens=False)["input_ids"]
    if name == "paligemma":  # no chat template of its own: "<image>*N <bos> prompt \n" (processor and vLLM)
        image_tokens = (tok.convert_tokens_to_ids("<image>"),) * backend.processor.image_seq_length
        newline = tok.convert_tokens_to_ids("\n")
        assert ids == (*image_tokens, tok.bos_token_id, *rendered, newline)
        return
    # Same ids as the template's text, except where the processor expanded the image placeholder.
    assert ids[:1] == tuple(rendered[:1]) and ids[-3:] == tuple(rendered[-3:])
    if tok.bos_token_id is not None:
        assert ids.count(tok.bos_token_id) == rendered.count(tok.bos_token_id)  # Gemma3: its template's one
        with_special = tok(text)["input_ids"]
        if FAMILIES[name].tokens.add_bos:  # what the processor used to score: a BOS more
            assert with_special.count(tok.bos_token_id) == rendered.count(tok.bos_token_id) + 1


@pytest.mark.parametrize("size", ["native", (48, 40), (96, 96)])
def test_scores_through_the_shortcut_equal_the_processors_and_never_depend_on_batch_size(family, size):
    from eagle.backends.hf import HFBackend

    name, _, backend = family
    hw = (FAMILIES[name].native_size,) * 2 if size == "native" else size
    images = _images(5, hw)
    request = _request(backend)
    slow = HFBackend(backend.model, processor=backend.processor, fast_inputs=False, batch_size=5)
    ref = slow.score(images, request)
    for bs in (1, 2, 5):
        got = HFBackend(backend.model, processor=backend.processor, batch_size=bs).score(images, request)
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6)
    assert np.ptp(np.log(ref[:, 0])) > 1e-4, "the image must move the score"


def test_masked_images_scored_from_their_regions_equal_the_processor_on_composed_images(family):
    """What EAGLE scores in-process (a description of masked images, resized from their regions
    where the processor resizes) equals the processor on the composed images (what a server does)."""
    from eagle.backends.hf import HFBackend
    from eagle.regions import SlicoSegmenter
    from eagle.types import MaskedImages

    name, _, backend = family
    side = FAMILIES[name].native_size * 3 // 2  # every family's processor resizes this
    image = _images(3, (side, side), seed=5)[2]
    labels = SlicoSegmenter(n_segments=12).segment(image)
    keep = np.random.default_rng(5).random((5, int(labels.max()) + 1)) < 0.5
    keep[0] = True
    masked = MaskedImages(image, labels, keep)
    request = _request(backend)
    slow = HFBackend(backend.model, processor=backend.processor, fast_inputs=False, batch_size=5)
    fast = HFBackend(backend.model, processor=backend.processor, batch_size=2)
    got = fast.score_masked(masked, request)
    np.testing.assert_allclose(got, slow.score(masked.compose(), request), rtol=0, atol=1e-6)


def test_answers_yes_and_stops_in_batches_of_several_images(family):
    from eagle.backends.hf import HFBackend

    name, _, backend = family
    images = _images(3, (FAMILIES[name].native_size + 8,) * 2)
    requests = [GenerationRequest(image=im, prompt=QUESTION, max_new_tokens=4) for im in images]
    batched = HFBackend(backend.model, processor=backend.processor, batch_size=3).generate(requests)
    single = HFBackend(backend.model, processor=backend.processor, batch_size=1).generate(requests)
    assert [a.text.strip() for a in batched] == ["Yes"] * 3
    assert all(a.finish_reason == "stop" for a in batched)
    assert [a.token_ids for a in batched] == [a.token_ids for a in single]
    # the generated logprob is the scored one: one prompt, two code paths
    request = ScoreRequest(prompt=QUESTION, answer_ids=batched[0].token_ids, target_positions=(0,),
                           target_ids=batched[0].token_ids[:1])  # fmt: skip
    scored = np.log(backend.score(images[:1], request)[0, 0])
    np.testing.assert_allclose(scored, batched[0].logprobs[0], atol=1e-5)


def test_an_answer_token_is_never_seen_by_the_position_predicting_it(family):
    """Scoring a later answer position appends the answer tokens before it; the score at position 0
    must not change (PaliGemma: an answer token inside its bidirectional prefix would be seen by the
    position that predicts it, 6e-3 in logprob before the backend marked answer tokens as suffix)."""
    name, _, backend = family
    images = _images(2, (FAMILIES[name].native_size,) * 2)
    yes, eos = backend.answer_token_ids(QUESTION, "Yes"), backend.tokenizer.eos_token_id
    answer = (*yes, eos)
    first = ScoreRequest(prompt=QUESTION, answer_ids=answer, target_positions=(0,), target_ids=yes[:1])
    both = ScoreRequest(prompt=QUESTION, answer_ids=answer, target_positions=(0, len(yes)),
                        target_ids=(yes[0], eos))  # fmt: skip
    np.testing.assert_allclose(np.log(backend.score(images, both)[:, 0]),
                               np.log(backend.score(images, first)[:, 0]), rtol=0, atol=1e-5)  # fmt: skip


def test_explanation_of_the_answer_token(family):
    from eagle import Eagle, EfficientSearch, GridSegmenter

    name, _, backend = family
    image = _images(1, (64, 64), seed=3)[0]
    labels = GridSegmenter(rows=3, cols=3).segment(image)
    request = _request(backend)
    explanation = Eagle(backend, search=EfficientSearch()).explain(image, labels, request)
    assert sorted(explanation.order.tolist()) == list(range(9))
    assert explanation.insertion.shape == (10, 2) and np.isfinite(explanation.region_scores).all()


def test_the_builder_is_deterministic(family_checkpoint, tmp_path):
    import torch

    from tests.support.tiny_families import build

    torch.set_num_threads(1)
    first = family_checkpoint("llava_next")
    again = build("llava_next", tmp_path / "again")
    for name in ("model.safetensors", "tokenizer.json", "config.json", "chat_template.jinja"):
        assert (first / name).read_bytes() == (again / name).read_bytes(), name


def test_dtype_defaults_to_the_checkpoints_and_can_be_chosen(family_checkpoint):
    from eagle.backends.hf import HFBackend
    from eagle.backends.hf_checkpoint import checkpoint_dtype

    path = family_checkpoint("qwen2_5_vl")
    assert checkpoint_dtype(path) == "float32"
    backend = HFBackend(path, dtype="bfloat16")
    assert backend.info()["dtype"] == "bfloat16"
    image = _images(1, (56, 56))
    assert backend.score(image, _request(backend)).shape == (1, 2)
    with pytest.raises(ValueError, match="unknown dtype 'float8'"):
        HFBackend(path, dtype="float8")


def test_a_small_audit_marks_and_explains_hallucinations(family, tmp_path):
    from audit import AuditConfig, run_audit
    from storage.store import Store

    name, path, _ = family
    config = AuditConfig(store=tmp_path / "store", model=str(path), probe_images=3, regions=9, explain="2",
                         seed=5, report=False, backend_options={"dtype": "float32"})  # fmt: skip
    result = run_audit(config)
    assert result.status == "complete" and result.failed_samples == 0, result
    # The model answers "Yes" to everything: every question about an absent object is marked.
    assert result.marks > 0 and result.explained == result.targets == 2, result
    store = Store(config.store)
    yes_ratio = store.query(
        "SELECT yes_ratio FROM metrics WHERE run_id = ? AND label_set = 'pope' AND split = 'random'"
        " AND object_class = 'all'", [result.run_id],
    ).column(0).to_pylist()  # fmt: skip
    assert yes_ratio == [1.0]
    config_json = store.query("SELECT config FROM runs WHERE run_id = ?", [result.run_id]).column(0)[0]
    record = json.loads(config_json.as_py())
    assert record["backend_info"]["dtype"] == "float32" and record["backend_options"] == {"dtype": "float32"}
