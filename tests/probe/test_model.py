"""The probe model: build, save/load round trip, the shipped checkpoint, training code."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from probe.classes import CAPTION_PROMPT, CLASS_NAMES, question_text
from probe.model import CHECKPOINT_DIR, ProbeArch, build_untrained, load_probe, save_checkpoint
from probe.world import make_scene

SHIPPED = CHECKPOINT_DIR / "config.json"


def _chat(processor, prompt: str, answer: str | None = None) -> str:
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
    if answer is None:
        return processor.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    msgs.append({"role": "assistant", "content": answer})
    return processor.apply_chat_template(msgs, continue_final_message=True, tokenize=False)


def test_tokenizer_keeps_class_names_and_answers_as_single_tokens() -> None:
    _, processor = build_untrained(ProbeArch(text_layers=1, vision_layers=1))
    tok = processor.tokenizer
    for name in CLASS_NAMES:
        assert len(tok(" " + name, add_special_tokens=False)["input_ids"]) == 1, name
    assert tok.tokenize(" Yes") == ["ĠYes"] and tok.tokenize(" No") == ["ĠNo"]
    assert tok.decode(tok(" a circle, a star.")["input_ids"]) == " a circle, a star."


def test_chat_template_and_processor_expand_the_image() -> None:
    model, processor = build_untrained(ProbeArch(text_layers=1, vision_layers=1))
    text = _chat(processor, question_text("star"))
    assert text == "USER: <image>\nIs there a star in the image? ASSISTANT:"
    assert _chat(processor, question_text("star"), "Yes").endswith("ASSISTANT: Yes")
    inputs = processor(text=text, images=make_scene(0, 0).image, return_tensors="pt")
    n_image = int((inputs["input_ids"] == model.config.image_token_index).sum())
    assert n_image == ProbeArch().image_tokens == 16


def test_save_load_round_trip_uses_vllm_key_names(tmp_path: Path) -> None:
    from safetensors import safe_open

    model, processor = build_untrained(ProbeArch(text_layers=1, vision_layers=1))
    save_checkpoint(model, processor, tmp_path)
    with safe_open(str(tmp_path / "model.safetensors"), "pt") as f:
        keys = list(f.keys())
    vision = [k for k in keys if "vision_tower" in k]
    assert vision and all(
        ".vision_tower.vision_model." in k or k.startswith("vision_tower.vision_model.") for k in vision
    )
    loaded, proc2 = load_probe(tmp_path)
    inputs = processor(
        text=_chat(processor, "Is there a moon in the image?"),
        images=make_scene(0, 1).image,
        return_tensors="pt",
    )
    with torch.no_grad():
        a = model.eval()(**inputs).logits
        b = loaded(**inputs).logits
    assert torch.equal(a, b)
    assert proc2.tokenizer.get_vocab() == processor.tokenizer.get_vocab()


def test_missing_checkpoint_error_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="eagle-audit probe train"):
        load_probe(tmp_path / "nothing")


@pytest.mark.slow
def test_a_few_training_steps_reduce_the_loss(tmp_path: Path) -> None:
    from probe import train as T

    cfg = T.TrainConfig(
        steps=40,
        n_scenes=64,
        batch_size=16,
        eval_every=10**9,
        warmup=5,
        arch=ProbeArch(text_layers=1, vision_layers=1),
    )
    losses: list[float] = []
    record = T.train(cfg, tmp_path, on_step=lambda step, lm: losses.append(lm))
    assert len(losses) == 40 and np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.5
    assert record["steps"] == 40 and (tmp_path / "training_record.json").exists()
    load_probe(tmp_path)  # what training writes loads


@pytest.mark.model
@pytest.mark.skipif(not SHIPPED.exists(), reason="the shipped checkpoint is not built yet")
def test_shipped_checkpoint_loads_offline_and_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    model, processor = load_probe()
    size = (CHECKPOINT_DIR / "model.safetensors").stat().st_size
    assert size <= 20 * 1024 * 1024
    record = json.loads((CHECKPOINT_DIR / "training_record.json").read_text())
    for key in ("command", "seed", "steps", "wall_time_s", "machine", "history"):
        assert key in record
    scene = make_scene(123, 4)
    tok = processor.tokenizer
    texts = [_chat(processor, CAPTION_PROMPT), _chat(processor, question_text(scene.names[0]))]
    tok.padding_side = "left"
    inputs = processor(text=texts, images=[scene.image, scene.image], return_tensors="pt", padding=True)
    out = model.generate(**inputs, max_new_tokens=20, do_sample=False)
    caption, answer = tok.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    mentioned = {w.strip(".,") for w in caption.split()} & set(CLASS_NAMES)
    assert mentioned, f"the caption names no class: {caption!r}"
    assert answer.strip() in {"Yes", "No"}
