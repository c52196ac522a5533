"""Token-level marking: counter-token targets for wrong yes/no answers, token spans of hallucinated
caption mentions, with the probe tokenizer and on probe model generations."""

from __future__ import annotations

from pathlib import Path

import pytest

from auditors.marking import MarkingError, TokenMarker, counter_word, decode_offsets, token_span
from auditors.mentions import COCO, vocabulary
from auditors.parsing import parse_yes_no


@pytest.fixture(scope="module")
def tokenizer():
    from probe.model import build_tokenizer

    return build_tokenizer()


class _TokenizerBackend:
    """The Backend surface marking uses (decode, answer_token_ids) over a tokenizer, to check that
    the Backend path and the tokenizer path agree."""

    def __init__(self, tok) -> None:
        self.tok = tok

    def decode(self, ids):
        return self.tok.decode(list(ids), skip_special_tokens=True)

    def answer_token_ids(self, prompt: str, answer: str):
        return tuple(self.tok.encode(answer, add_special_tokens=False))


def _markers(tok) -> list[TokenMarker]:
    return [TokenMarker.from_tokenizer(tok), TokenMarker.from_backend(_TokenizerBackend(tok))]


def test_counter_word_keeps_the_form() -> None:
    assert [counter_word(w) for w in ("Yes", "yes", "YES", "No", "no", "NO")] == [
        "No",
        "no",
        "NO",
        "Yes",
        "yes",
        "YES",
    ]
    with pytest.raises(MarkingError, match="not a yes/no word"):
        counter_word("maybe")


def test_false_positive_and_negative_targets(tokenizer) -> None:
    for marker in _markers(tokenizer):
        ids = tokenizer.encode(" Yes", add_special_tokens=False)
        fp = marker.mark_yes_no(answer_ids=ids, label="no")
        assert fp is not None and fp.kind == "false_positive"
        assert (fp.position, fp.token_text, fp.counter_text) == (0, " Yes", " No")
        assert fp.counter_id == tokenizer.convert_tokens_to_ids(tokenizer.tokenize(" No"))[0]
        assert marker.mark_yes_no(answer_ids=ids, label="yes") is None  # right answers have no target
        ids = tokenizer.encode("No, there is not.", add_special_tokens=False)
        fn = marker.mark_yes_no(answer_ids=ids, label="yes")
        assert fn is not None and fn.kind == "false_negative" and fn.position == 0
        assert (fn.token_text, fn.counter_text) == ("No", "Yes")


def test_decision_after_other_tokens_and_split_words(tokenizer) -> None:
    marker = TokenMarker.from_tokenizer(tokenizer)
    ids = tokenizer.encode("Answer: yes", add_special_tokens=False)  # "yes" is several tokens here
    target = marker.mark_yes_no(answer_ids=ids, label="no")
    assert target is not None
    _, offsets = marker.offsets(ids)
    s, e = target.decision
    assert "Answer: yes"[s:e] == "yes"
    assert offsets[target.position][0] <= s < offsets[target.position][1]
    assert target.counter_text is not None and "no".startswith(target.counter_text.strip())
    assert target.counter_id != target.token_id


def test_phrase_decision_has_position_but_no_counter(tokenizer) -> None:
    marker = TokenMarker.from_tokenizer(tokenizer)
    ids = tokenizer.encode("There is a star.", add_special_tokens=False)
    target = marker.mark_yes_no(answer_ids=ids, label="no")
    assert target is not None and target.rule == "affirmation" and target.counter_id is None
    assert target.position == 0
    assert (
        marker.mark_yes_no(answer_ids=tokenizer.encode("circle", add_special_tokens=False), label="no")
        is None
    )


def test_caption_spans_decode_back_to_the_mention(tokenizer) -> None:
    text = "a circle, two stars and a moon."
    for marker in _markers(tokenizer):
        ids = tokenizer.encode(text, add_special_tokens=False)
        targets = marker.mark_caption(answer_ids=ids, present={"circle"}, vocabulary=vocabulary("probe"))
        assert [(t.cls, t.text) for t in targets] == [("star", "stars"), ("moon", "moon")]
        stars = targets[0]
        assert stars.token_end - stars.token_start == 2  # " star" + "s": a multi-token word
        for t in targets:
            assert tokenizer.decode(list(ids[t.token_start : t.token_end])).strip() == t.text
            assert t.token_ids == tuple(ids[t.token_start : t.token_end])


def test_decode_offsets_partition_the_text_with_multibyte_characters(tokenizer) -> None:
    text = "a café star — ok"
    ids = tokenizer.encode(text, add_special_tokens=False)
    decoded, offsets = decode_offsets(ids, lambda x: tokenizer.decode(list(x)))
    assert decoded == text
    assert offsets[0][0] == 0 and offsets[-1][1] == len(text)
    assert all(a[1] == b[0] for a, b in zip(offsets, offsets[1:], strict=False))
    s = text.index("star")
    start, end = token_span(offsets, s, s + 4)
    assert tokenizer.decode(ids[start:end]).strip() == "star"
    with pytest.raises(MarkingError, match="covered by no token"):
        token_span(offsets, len(text) + 1, len(text) + 3)


def test_backend_and_tokenizer_paths_agree_on_coco_captions(tokenizer) -> None:
    text = "Two men eat hot dogs next to an orange cat on a sofa."
    ids = tokenizer.encode(text, add_special_tokens=False)
    a, b = (m.mark_caption(answer_ids=ids, present={"person"}, vocabulary=COCO) for m in _markers(tokenizer))
    assert a == b and [t.cls for t in a] == ["hot dog", "cat", "couch"]
    for t in a:
        assert tokenizer.decode(ids[t.token_start : t.token_end]).strip() == t.text


# ------------------------------------------------------------------------------------------------
# On probe model generations (the trained checkpoint when it exists, else an untrained model)
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def probe_model(tmp_path_factory):
    import torch

    from probe.model import CHECKPOINT_DIR, build_untrained, load_probe, save_checkpoint

    torch.set_num_threads(1)
    if (CHECKPOINT_DIR / "config.json").exists():
        return (*load_probe(CHECKPOINT_DIR), True)
    path = tmp_path_factory.mktemp("probe-untrained")
    save_checkpoint(*build_untrained(), path)
    return (*load_probe(path), False)


@pytest.fixture(scope="module")
def heldout_world(tmp_path_factory) -> Path:
    from probe.world import write_world

    out = tmp_path_factory.mktemp("heldout-world")
    write_world(out, seed=20_251, n_images=20, split="heldout")
    return out


def _generate(
    model, processor, images, prompts: list[str], max_new_tokens: int, batch: int = 16
) -> list[list[int]]:
    import torch

    tok = processor.tokenizer
    tok.padding_side = "left"
    out: list[list[int]] = []
    for i in range(0, len(prompts), batch):
        texts = [
            processor.apply_chat_template(
                [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": p}]}],
                add_generation_prompt=True,
                tokenize=False,
            )
            for p in prompts[i : i + batch]
        ]
        inputs = processor(text=texts, images=images[i : i + batch], return_tensors="pt", padding=True)
        with torch.no_grad():
            gen = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        for row in gen[:, inputs["input_ids"].shape[1] :].tolist():
            # the answer's tokens: up to the end-of-sequence token, specials dropped
            ids = []
            for t in row:
                if t == tok.eos_token_id:
                    break
                if t not in tok.all_special_ids:
                    ids.append(t)
            out.append(ids)
    return out


@pytest.mark.model
def test_every_false_positive_on_probe_generations_has_a_counter_target(
    probe_model, heldout_world: Path
) -> None:
    import numpy as np
    from PIL import Image

    from auditors.annotations import load_annotations

    model, processor, trained = probe_model
    annotations = load_annotations(heldout_world)
    questions = annotations.questions("repope", "adversarial")
    images = [np.asarray(Image.open(heldout_world / "images" / q.image).convert("RGB")) for q in questions]
    answers = _generate(model, processor, images, [q.text for q in questions], max_new_tokens=4)
    marker = TokenMarker.from_tokenizer(processor.tokenizer)
    false_positives = parsed = 0
    for q, ids in zip(questions, answers, strict=True):
        text = processor.tokenizer.decode(ids, skip_special_tokens=True)
        verdict = parse_yes_no(text)
        parsed += verdict != "unparsed"
        target = marker.mark_yes_no(answer_ids=ids, label=q.label)
        if verdict == "unparsed" or verdict == q.label:
            assert target is None
            continue
        assert target is not None and target.verdict == verdict
        assert processor.tokenizer.decode([ids[target.position]]) == target.token_text
        if verdict == "yes":
            false_positives += 1
            assert target.kind == "false_positive"
            assert target.counter_id is not None, f"no counter token for {text!r}"
            assert target.counter_text is not None and target.counter_text.strip().lower() in ("no", "n")
            assert target.counter_id != ids[target.position]
    if trained:
        assert parsed == len(questions), "the trained probe model answers every question with Yes/No"
    # Teacher-forced through the same tokenizer: a " Yes" to every absent object is a false positive
    # whose counter token is " No"; a " No" to a present one is a false negative with counter " Yes".
    tok = processor.tokenizer
    for q in questions:
        wrong = " Yes" if q.label == "no" else " No"
        target = marker.mark_yes_no(answer_ids=tok.encode(wrong, add_special_tokens=False), label=q.label)
        assert target is not None and target.position == 0
        counter = " No" if q.label == "no" else " Yes"
        assert target.counter_id == tok.encode(counter, add_special_tokens=False)[0]


@pytest.mark.model
def test_every_marked_caption_span_decodes_back_to_the_mention(probe_model, heldout_world: Path) -> None:
    import numpy as np
    from PIL import Image

    from auditors.benchmarks.captions import probe_ground_truth
    from probe.classes import CAPTION_PROMPT, CLASS_NAMES, caption_text

    model, processor, _ = probe_model
    truth = probe_ground_truth(heldout_world)
    names = sorted(truth)
    images = [np.asarray(Image.open(heldout_world / "images" / n).convert("RGB")) for n in names]
    generated = _generate(model, processor, images, [CAPTION_PROMPT] * len(names), max_new_tokens=24)
    tok = processor.tokenizer
    marker = TokenMarker.from_tokenizer(tok)
    for name, ids in zip(names, generated, strict=True):
        for t in marker.mark_caption(answer_ids=ids, present=truth[name], vocabulary=vocabulary("probe")):
            assert t.cls not in truth[name]
            assert tok.decode(ids[t.token_start : t.token_end]).strip() == t.text
    # Teacher-forced: each reference caption with one absent class added must mark exactly that class.
    injected = 0
    for name in names:
        absent = next(c for c in CLASS_NAMES if c not in truth[name])
        text = caption_text([*truth[name], absent])
        ids = tok.encode(text, add_special_tokens=False)
        targets = marker.mark_caption(answer_ids=ids, present=truth[name], vocabulary=vocabulary("probe"))
        assert [t.cls for t in targets] == [absent]
        assert tok.decode(ids[targets[0].token_start : targets[0].token_end]).strip() == absent
        injected += 1
    assert injected == len(names)


def test_counter_token_through_a_template_that_adds_a_separator(tokenizer) -> None:
    """Encoding through a chat template ("ASSISTANT: " + content) turns " No" into [" ", " No"];
    the counter token must be " No", never the separator."""
    plain = TokenMarker.from_tokenizer(tokenizer)
    templated = TokenMarker(
        decode=plain.decode,
        encode=lambda text: tokenizer(" " + text, add_special_tokens=False)["input_ids"],
    )
    ids = tokenizer(" Yes", add_special_tokens=False)["input_ids"]
    target = templated.mark_yes_no(answer_ids=ids, label="no")
    assert target is not None and target.counter_text == " No"
    assert target.counter_id == plain.mark_yes_no(answer_ids=ids, label="no").counter_id
