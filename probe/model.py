"""The probe MLLM: a small standard LLaVA (CLIP vision tower + Llama text model) with its own
byte-level BPE tokenizer, chat template and processor, all built locally (no hub access).

`build_untrained(...)` makes a fresh model, processor and tokenizer; `save_checkpoint` writes them
in the layout both transformers and vLLM load (vision keys renamed to
`vision_tower.vision_model.*`, which vLLM's LLaVA loader expects and transformers accepts);
`load_probe` loads the shipped checkpoint offline.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

CHECKPOINT_DIR = Path(__file__).resolve().parent / "checkpoint"
IMAGE_TOKEN = "<image>"
SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>", IMAGE_TOKEN]

# LLaVA-1.5 style: "USER: <image>\nQuestion ASSISTANT: Answer</s>". Content may be a string or a list
# of OpenAI-style parts ({"type": "image"|"image_url"|"text"}), so vLLM's chat endpoint works too.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['content'] is string %}{% set parts = [{'type': 'text', 'text': message['content']}] %}"
    "{% else %}{% set parts = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}USER: "
    "{% for part in parts %}{% if part['type'] in ['image', 'image_url'] %}<image>\n"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %} "
    "{% elif message['role'] == 'assistant' %}ASSISTANT: "
    "{% for part in parts %}{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}</s>"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


@dataclass(frozen=True)
class ProbeArch:
    """Model dimensions. Head dims are 64 because vLLM's CPU attention only takes 32, 64, 80, ..."""

    image_size: int = 128
    patch_size: int = 32  # 4 x 4 = 16 image tokens: cheap forwards for EAGLE's thousands of scorings
    vision_hidden: int = 128
    vision_layers: int = 2
    vision_heads: int = 2
    text_hidden: int = 128
    text_layers: int = 4
    text_heads: int = 2
    text_intermediate: int = 384
    vocab_size: int = 512

    @property
    def image_tokens(self) -> int:
        return (self.image_size // self.patch_size) ** 2


def corpus() -> list[str]:
    """Every string the probe model is asked or answers, to train the tokenizer on."""
    from probe.classes import CAPTION_PROMPT, CLASS_NAMES, caption_text, question_text

    texts = [CAPTION_PROMPT, "USER:", "ASSISTANT:", "Yes", "No", " Yes", " No", "Yes.", "No."]
    for i, a in enumerate(CLASS_NAMES):
        texts.append(question_text(a))
        for b in CLASS_NAMES[i + 1 :]:
            texts.append(caption_text([a, b]))
            texts.append(
                f"USER: <image>\n{question_text(a)} ASSISTANT: Yes</s>"
                f"USER: {question_text(b)} ASSISTANT: No</s>"
            )
    # Ordinary English so the tokenizer can still encode what users and other tests type.
    texts += ["The quick brown fox jumps over the lazy dog. 0123456789 !?,.;:'\"()[]{}<>-_/\\@#$%^&*+=~`|"]
    return texts


def build_tokenizer(vocab_size: int = 512):
    """Byte-level BPE trained on the probe corpus, wrapped as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    texts = corpus()
    tok.train_from_iterator(texts * 20, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        extra_special_tokens={"image_token": IMAGE_TOKEN},
        chat_template=CHAT_TEMPLATE,
        padding_side="left",
    )
    return fast


def build_processor(tokenizer, arch: ProbeArch):
    from transformers import CLIPImageProcessor, LlavaProcessor

    image_processor = CLIPImageProcessor(
        size={"height": arch.image_size, "width": arch.image_size},
        do_center_crop=False,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=arch.patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=CHAT_TEMPLATE,
    )


def build_config(tokenizer, arch: ProbeArch):
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

    vision = CLIPVisionConfig(
        hidden_size=arch.vision_hidden,
        intermediate_size=arch.vision_hidden * 4,
        num_hidden_layers=arch.vision_layers,
        num_attention_heads=arch.vision_heads,
        image_size=arch.image_size,
        patch_size=arch.patch_size,
        projection_dim=arch.vision_hidden,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=arch.text_hidden,
        intermediate_size=arch.text_intermediate,
        num_hidden_layers=arch.text_layers,
        num_attention_heads=arch.text_heads,
        num_key_value_heads=arch.text_heads,
        head_dim=arch.text_hidden // arch.text_heads,
        max_position_embeddings=512,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
        projector_hidden_act="gelu",
        image_seq_length=arch.image_tokens,
        tie_word_embeddings=False,
    )


def build_untrained(arch: ProbeArch | None = None, seed: int = 0):
    """A freshly initialised probe model with its processor; returns (model, processor)."""
    import torch
    from transformers import LlavaForConditionalGeneration

    arch = arch or ProbeArch()
    tokenizer = build_tokenizer(arch.vocab_size)
    processor = build_processor(tokenizer, arch)
    config = build_config(tokenizer, arch)
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model, processor


def _rename_for_vllm(path: Path) -> None:
    """transformers 5 writes CLIP weights as `vision_tower.*`; vLLM wants `vision_tower.vision_model.*`."""
    from safetensors.torch import load_file, save_file

    state = load_file(str(path))
    renamed = {}
    for key, value in state.items():
        for prefix in ("model.vision_tower.", "vision_tower."):
            if key.startswith(prefix) and not key.startswith(prefix + "vision_model."):
                key = prefix + "vision_model." + key[len(prefix) :]
                break
        renamed[key] = value.contiguous()
    save_file(renamed, str(path), metadata={"format": "pt"})


def save_checkpoint(model, processor, out: Path | str, record: dict | None = None) -> Path:
    """Save model, processor and tokenizer (float32, safetensors) plus an optional training record."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    processor.save_pretrained(out)
    _rename_for_vllm(out / "model.safetensors")
    if record is not None:
        (out / "training_record.json").write_text(json.dumps(record, indent=2) + "\n")
    return out


def load_probe(path: Path | str | None = None, device: str = "cpu"):
    """Load a probe checkpoint (default: the one shipped in the package) offline; returns
    (model, processor)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    path = Path(path) if path is not None else CHECKPOINT_DIR
    if not (path / "config.json").exists():
        raise FileNotFoundError(
            f"no probe checkpoint at {path}: train one with `eagle-audit probe train --out {path}`"
        )
    model = LlavaForConditionalGeneration.from_pretrained(path, dtype="float32").to(device).eval()
    processor = AutoProcessor.from_pretrained(path)
    return model, processor


def arch_dict(arch: ProbeArch) -> dict:
    return asdict(arch)
