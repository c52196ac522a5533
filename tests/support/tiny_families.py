"""Tiny random-weight checkpoints of real multimodal model families, built locally (no hub).

Each family's checkpoint is what `save_pretrained` writes for that architecture with transformers
5.19 (config, safetensors, tokenizer, processor, chat template), at toy sizes: a 2-layer text tower
(hidden 64, head_dim 32: vLLM's CPU attention takes head sizes 32, 64, ...), a 1-2 layer vision
tower, a byte-level BPE tokenizer trained on the probe world's questions plus the family's special
tokens, and a chat template written after the family's own (its BOS habits included: the LLaVA,
LLaVA-NeXT and Gemma3 tokenizers add a BOS, Gemma3's template writes one too).

Weights are random (seeded) and then *nudged*: the LM-head rows of the answer word "Yes" and of the
end-of-turn token are moved along the mean final hidden state at the answer position, so that every
family answers "Yes" to the probe world's yes/no questions and stops. An audit then has
hallucinations to explain (every absent object is "seen"), while the image still moves the scores.

    >>> path = build("qwen2_5_vl", tmp_path / "qwen2_5_vl")   # doctest: +SKIP

Building is deterministic: the same family gives the same weights every time (for a given number of
torch threads, which decides the last bits of the nudge).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from eagle.backends.hf_checkpoint import image_only

ANSWER = "Yes"
TEXT = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
            num_key_value_heads=1, head_dim=32, max_position_embeddings=1024, rms_norm_eps=1e-6)  # fmt: skip
NUDGE_MARGIN = 3.0  # nats by which "Yes" (then the end of turn) beats every other token after the nudge


@dataclass(frozen=True)
class Tokens:
    """A family's tokenizer roles and extra special tokens (role name -> token text)."""

    bos: str | None
    eos: str  # the end-of-turn token: generation stops here (vLLM and transformers alike)
    pad: str
    add_bos: bool  # the tokenizer's post-processor prepends `bos` (add_special_tokens=True)
    extra: dict[str, str] = field(default_factory=dict)  # e.g. {"image_token": "<image>"}
    more: tuple[str, ...] = ()  # other special tokens the processor looks up
    words: tuple[str, ...] = ()  # ordinary (non-special) whole tokens the vocabulary must hold


@dataclass(frozen=True)
class Family:
    name: str
    architecture: str
    tokens: Tokens
    chat_template: str
    native_size: int  # the square size the processor resizes images to (its vision tiles' size)
    build: Callable[[Any], tuple[Any, Any]]  # tokenizer -> (config, processor)
    vllm_rename: Callable[[str], str] | None = None  # weight key renames vLLM's loader needs
    # What vLLM's processor loader needs beside the image processor: transformers builds these
    # processors with a video processor, which this environment cannot (no torchvision).
    video_processor: dict[str, Any] | None = None


# ---- tokenizer --------------------------------------------------------------------------------
def _corpus() -> list[str]:
    from probe.classes import CAPTION_PROMPT, CLASS_NAMES, caption_text, question_text

    answers = ["Yes", "No", " Yes", " No", "\nYes", "\nNo", ":Yes", ": Yes"] * 10
    texts = answers + [CAPTION_PROMPT, "Yes.", "No.", "user", "assistant", "model",
             "system", "USER:", "ASSISTANT:", "User:", "Assistant:", "[INST]", "[/INST]",
             "You are a helpful assistant."]  # fmt: skip
    for i, a in enumerate(CLASS_NAMES):
        texts.append(question_text(a))
        texts.extend(caption_text([a, b]) for b in CLASS_NAMES[i + 1 :])
    texts.append("The quick brown fox jumps over the lazy dog. 0123456789")
    texts.append("!?,.;:'\"()[]{}<>-_/\\@#$%^&*+=~`|\n")
    return texts


def build_tokenizer(tokens: Tokens, chat_template: str, vocab_size: int = 512):
    """Byte-level BPE over the probe corpus with the family's special tokens (deterministic)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    roles = [t for t in (tokens.bos, tokens.eos, tokens.pad) if t]
    special = list(dict.fromkeys(roles + list(tokens.extra.values()) + list(tokens.more)))
    tok = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size + len(special),
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus() * 20, trainer=trainer)
    tok.add_tokens([AddedToken(w, normalized=False, special=False) for w in tokens.words])
    if tokens.add_bos:
        assert tokens.bos is not None
        bos_id = tok.token_to_id(tokens.bos)
        bos = tokens.bos
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, bos_id)]
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=tokens.bos,
        eos_token=tokens.eos,
        pad_token=tokens.pad,
        extra_special_tokens=dict(tokens.extra),
        chat_template=chat_template,
        padding_side="left",
    )


def _text_config(cls: Any, tokenizer: Any, **kw: Any) -> Any:
    args = dict(TEXT, vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                tie_word_embeddings=False)  # fmt: skip
    args.update(kw)
    return cls(**args)


def _vision(cls: Any, image_size: int, patch_size: int, **kw: Any) -> Any:
    args = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                image_size=image_size, patch_size=patch_size)  # fmt: skip
    args.update(kw)
    return cls(**args)


def _id(tokenizer: Any, token: str) -> int:
    return int(tokenizer.convert_tokens_to_ids(token))


# ---- chat templates (written after each family's own) --------------------------------------------
# Like the real ones, they loop over `message['content']` itself: vLLM reads the template to decide
# whether it takes typed content parts, and with any other loop it would flatten the content to a
# string and put the image placeholder where it likes (a different prompt than transformers renders).
def _content(image: str, text: str, only: str | None = None) -> str:
    """Jinja rendering a message's content: string content as text; typed parts in order, images as
    `image` and text parts through `text` (a Jinja expression of `p`); `only` keeps one part type."""
    keep = {"image": "{% if p['type'] == 'image' %}" + image + "{% endif %}",
            "text": "{% if p['type'] == 'text' %}{{ " + text + " }}{% endif %}"}  # fmt: skip
    body = keep[only] if only else keep["image"] + keep["text"]
    string = "" if only == "image" else "{{ " + text.replace("p['text']", "message['content']") + " }}"
    return (
        "{% if message['content'] is string %}" + string +
        "{% else %}{% for p in message['content'] %}" + body + "{% endfor %}{% endif %}"
    )  # fmt: skip


# LLaVA-1.5 (llava-hf): "USER: <image>\n<question> ASSISTANT:"; the template writes no BOS.
LLAVA_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] != 'system' %}{{ message['role'].upper() + ': ' }}{% endif %}" +
    _content("{{ '<image>\n' }}", "p['text'] + ' '", only="image") +
    _content("", "p['text'] + ' '", only="text") +
    "{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)  # fmt: skip

# LLaVA-NeXT (llava-v1.6-mistral-hf): "[INST] <image>\n<question> [/INST]"; the tokenizer adds <s>.
LLAVA_NEXT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' }}" +
    _content("{{ '<image>\n' }}", "p['text']", only="image") + _content("", "p['text']", only="text") +
    "{{ ' [/INST]' }}{% elif message['role'] == 'assistant' %}" + _content("", "' ' + p['text']") +
    "{{ '</s>' }}{% endif %}{% endfor %}"
)  # fmt: skip


def _chatml(image: str, default_system: str | None) -> str:
    """Qwen-style ChatML; `image` is what an image part renders as."""
    head = (
        "{% if messages[0]['role'] != 'system' %}"
        f"{{{{ '<|im_start|>system\n{default_system}<|im_end|>\n' }}}}{{% endif %}}"
        if default_system
        else ""
    )
    return (
        head + "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' }}" +
        _content("{{ '" + image + "' }}", "p['text']") + "{{ '<|im_end|>\n' }}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    )  # fmt: skip


QWEN_TEMPLATE = _chatml("<|vision_start|><|image_pad|><|vision_end|>", "You are a helpful assistant.")
INTERNVL_TEMPLATE = _chatml("<IMG_CONTEXT>\\n", None)

# Idefics3 / SmolVLM: "<|im_start|>User:<image>Q<end_of_utterance>\nAssistant:"; the template
# writes the leading <|im_start|> itself.
IDEFICS3_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}"
    "{% if message['content'] is not string and message['content'][0]['type'] == 'image' %}{{ ':' }}"
    "{% else %}{{ ': ' }}{% endif %}" + _content("{{ '<image>' }}", "p['text']") +
    "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)  # fmt: skip

# Gemma3: the template writes {{ bos_token }} (and the tokenizer adds another one when asked to).
GEMMA3_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "{{ '<start_of_turn>' + role + '\n' }}" + _content("{{ '<start_of_image>' }}", "p['text'] | trim") +
    "{{ '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)  # fmt: skip


# PaliGemma has no chat template of its own: its processor builds "<image>*N <bos> prompt \n" and
# the answer follows the newline. This template renders the texts only: no image placeholder and
# no newline, because the processor and vLLM both put the image tokens and the BOS in front and
# both end the prompt with the newline (transformers always, vLLM unless the prompt ends with one:
# a template newline would give transformers two). The assistant's text follows the question
# directly, so `answer_token_ids` finds the answer's own tokens.
PALIGEMMA_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] in ('user', 'assistant') %}" +
    _content("", "p['text']", only="text") + "{% endif %}{% endfor %}"
)  # fmt: skip

# Mistral3 (Mistral-Small-3.1): "<s>[INST][IMG]<question>[/INST]"; the template writes the BOS, the
# processor expands [IMG] into rows of [IMG] ending in [IMG_BREAK], the last one [IMG_END].
MISTRAL3_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '[INST]' }}" + _content("{{ '[IMG]' }}", "p['text']") +
    "{{ '[/INST]' }}{% elif message['role'] == 'assistant' %}" + _content("", "p['text']") +
    "{{ eos_token }}{% endif %}{% endfor %}"
)  # fmt: skip

# ---- families -----------------------------------------------------------------------------------
def _llava(tok: Any) -> tuple[Any, Any]:
    from transformers import CLIPImageProcessor, CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaProcessor

    size, patch = 32, 8
    config = LlavaConfig(
        vision_config=_vision(CLIPVisionConfig, size, patch, projection_dim=32),
        text_config=_text_config(LlamaConfig, tok),
        image_token_index=_id(tok, "<image>"),
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
        image_seq_length=(size // patch) ** 2,
        tie_word_embeddings=False,
    )
    images = CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    processor = LlavaProcessor(image_processor=images, tokenizer=tok, patch_size=patch,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1,
                               chat_template=tok.chat_template)  # fmt: skip
    return config, processor


def _llava_next(tok: Any) -> tuple[Any, Any]:
    from transformers import (
        CLIPVisionConfig,
        LlavaNextConfig,
        LlavaNextImageProcessor,
        LlavaNextProcessor,
        MistralConfig,
    )

    size, patch = 32, 8
    pinpoints = [[size, size], [size, 2 * size], [2 * size, size], [2 * size, 2 * size]]
    config = LlavaNextConfig(
        vision_config=_vision(CLIPVisionConfig, size, patch, projection_dim=32),
        text_config=_text_config(MistralConfig, tok, sliding_window=None),
        image_token_index=_id(tok, "<image>"),
        image_grid_pinpoints=pinpoints,
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
        image_seq_length=(size // patch) ** 2,
        tie_word_embeddings=False,
    )
    images = LlavaNextImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size},
                                     image_grid_pinpoints=pinpoints)  # fmt: skip
    processor = LlavaNextProcessor(image_processor=images, tokenizer=tok, patch_size=patch,
                                   vision_feature_select_strategy="default", num_additional_image_tokens=1,
                                   chat_template=tok.chat_template)  # fmt: skip
    return config, processor


def _qwen_vl(version: str) -> Callable[[Any], tuple[Any, Any]]:
    def build(tok: Any) -> tuple[Any, Any]:
        from transformers import Qwen2VLImageProcessorPil

        if version == "2":
            from transformers import Qwen2VLConfig as Config
            from transformers import Qwen2VLProcessor as Processor

            vision = dict(depth=1, embed_dim=32, hidden_size=64, num_heads=2, mlp_ratio=2)
        else:
            from transformers import Qwen2_5_VLConfig as Config
            from transformers import Qwen2_5_VLProcessor as Processor

            vision = dict(depth=2, hidden_size=32, out_hidden_size=64, intermediate_size=64, num_heads=2,
                          window_size=56, fullatt_block_indexes=[1])  # fmt: skip
        vision.update(patch_size=14, spatial_merge_size=2, temporal_patch_size=2, in_channels=3)
        # mrope_section sums to head_dim / 2
        rope = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [4, 6, 6]}
        text = dict(TEXT, vocab_size=len(tok), tie_word_embeddings=False, bos_token_id=tok.pad_token_id,
                    eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                    rope_parameters=rope)  # fmt: skip
        config = Config(
            text_config=text,
            vision_config=vision,
            image_token_id=_id(tok, "<|image_pad|>"),
            video_token_id=_id(tok, "<|video_pad|>"),
            vision_start_token_id=_id(tok, "<|vision_start|>"),
            vision_end_token_id=_id(tok, "<|vision_end|>"),
            tie_word_embeddings=False,
        )
        images = Qwen2VLImageProcessorPil(min_pixels=56 * 56, max_pixels=112 * 112, patch_size=14,
                                          merge_size=2, temporal_patch_size=2)  # fmt: skip
        processor = image_only(Processor)(image_processor=images, tokenizer=tok,
                                          chat_template=tok.chat_template)  # fmt: skip
        return config, processor

    return build


def _internvl(tok: Any) -> tuple[Any, Any]:
    from transformers import GotOcr2ImageProcessorPil, InternVLConfig, InternVLProcessor, Qwen2Config
    from transformers.models.internvl import InternVLVisionConfig

    size, patch = 32, 8
    vision = InternVLVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                  num_attention_heads=2, image_size=[size, size],
                                  patch_size=[patch, patch])  # fmt: skip
    config = InternVLConfig(
        vision_config=vision,
        text_config=_text_config(Qwen2Config, tok),
        image_token_id=_id(tok, "<IMG_CONTEXT>"),
        image_seq_length=(size // patch) ** 2 // 4,
        downsample_ratio=0.5,
        tie_word_embeddings=False,
    )
    images = GotOcr2ImageProcessorPil(size={"height": size, "width": size}, crop_to_patches=True,
                                      min_patches=1, max_patches=4)  # fmt: skip
    processor = image_only(InternVLProcessor)(image_processor=images, tokenizer=tok,
                                              chat_template=tok.chat_template,
                                              image_seq_length=(size // patch) ** 2 // 4)  # fmt: skip
    return config, processor


def _idefics3(tok: Any) -> tuple[Any, Any]:
    from transformers import Idefics3Config, Idefics3ImageProcessorPil, Idefics3Processor, LlamaConfig
    from transformers.models.idefics3 import Idefics3VisionConfig

    size, patch, scale = 32, 8, 2
    config = Idefics3Config(
        vision_config=_vision(Idefics3VisionConfig, size, patch),
        text_config=_text_config(LlamaConfig, tok),
        image_token_id=_id(tok, "<image>"),
        scale_factor=scale,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
    )
    images = Idefics3ImageProcessorPil(size={"longest_edge": 2 * size}, max_image_size={"longest_edge": size},
                                       do_image_splitting=True)  # fmt: skip
    processor = Idefics3Processor(image_processor=images, tokenizer=tok, chat_template=tok.chat_template,
                                  image_seq_len=(size // patch) ** 2 // scale**2)  # fmt: skip
    return config, processor


def _gemma3(tok: Any) -> tuple[Any, Any]:
    from transformers import (
        Gemma3Config,
        Gemma3ImageProcessorPil,
        Gemma3Processor,
        Gemma3TextConfig,
        SiglipVisionConfig,
    )

    size, patch, tokens = 32, 8, 4
    text = _text_config(Gemma3TextConfig, tok, sliding_window=512, query_pre_attn_scalar=32,
                        final_logit_softcapping=None, attn_logit_softcapping=None)  # fmt: skip
    config = Gemma3Config(
        text_config=text,
        vision_config=_vision(SiglipVisionConfig, size, patch),
        mm_tokens_per_image=tokens,
        boi_token_index=_id(tok, "<start_of_image>"),
        eoi_token_index=_id(tok, "<end_of_image>"),
        image_token_index=_id(tok, "<image_soft_token>"),
        tie_word_embeddings=False,
    )
    images = Gemma3ImageProcessorPil(size={"height": size, "width": size})
    processor = Gemma3Processor(image_processor=images, tokenizer=tok, image_seq_length=tokens,
                                chat_template=tok.chat_template)  # fmt: skip
    return config, processor


def _paligemma(tok: Any) -> tuple[Any, Any]:
    from transformers import (
        GemmaConfig,
        PaliGemmaConfig,
        PaliGemmaProcessor,
        SiglipImageProcessorPil,
        SiglipVisionConfig,
    )

    size, patch = 32, 8
    images = SiglipImageProcessorPil(size={"height": size, "width": size})
    images.image_seq_length = (size // patch) ** 2
    # the processor adds PaliGemma's <loc>/<seg> tokens to the tokenizer: build it before the config
    processor = PaliGemmaProcessor(image_processor=images, tokenizer=tok, chat_template=tok.chat_template)
    text = _text_config(GemmaConfig, tok, hidden_activation="gelu_pytorch_tanh")
    config = PaliGemmaConfig(
        vision_config=_vision(SiglipVisionConfig, size, patch, projection_dim=TEXT["hidden_size"]),
        text_config=text,
        image_token_index=_id(tok, "<image>"),
        projection_dim=TEXT["hidden_size"],
        hidden_size=TEXT["hidden_size"],
        tie_word_embeddings=False,
    )
    return config, processor


def _mistral3(tok: Any) -> tuple[Any, Any]:
    from transformers import Mistral3Config, MistralConfig, PixtralImageProcessorPil, PixtralVisionConfig

    from eagle.backends.hf_checkpoint import pixtral_without_torchvision

    pixtral_without_torchvision()  # then the module imports (transformers' top-level name stays gated)
    from transformers.models.pixtral.processing_pixtral import PixtralProcessor

    longest, patch, merge = 32, 8, 2
    vision = PixtralVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                 num_attention_heads=2, head_dim=16, image_size=longest,
                                 patch_size=patch)  # fmt: skip
    config = Mistral3Config(
        vision_config=vision,
        text_config=_text_config(MistralConfig, tok, sliding_window=None),
        image_token_index=_id(tok, "[IMG]"),
        spatial_merge_size=merge,
        vision_feature_layer=-1,
        tie_word_embeddings=False,
    )
    images = PixtralImageProcessorPil(size={"longest_edge": longest}, patch_size=patch)
    processor = PixtralProcessor(image_processor=images, tokenizer=tok, patch_size=patch,
                                 spatial_merge_size=merge, chat_template=tok.chat_template)  # fmt: skip
    return config, processor

def _clip_rename(key: str) -> str:
    """transformers 5 writes CLIP/SigLIP weights as `vision_tower.*`; vLLM's loaders want
    `vision_tower.vision_model.*` (transformers loads either)."""
    for prefix in ("model.vision_tower.", "vision_tower."):
        if key.startswith(prefix) and not key.startswith(prefix + "vision_model."):
            return prefix + "vision_model." + key[len(prefix) :]
    return key


_QWEN_TOKENS = Tokens(
    bos=None, eos="<|im_end|>", pad="<|endoftext|>", add_bos=False,
    more=("<|im_start|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"),
)  # fmt: skip
_INTERNVL_VIDEO = {"video_processor_type": "InternVLVideoProcessor", "size": {"height": 32, "width": 32}}

_QWEN_VIDEO = {"video_processor_type": "Qwen2VLVideoProcessor", "patch_size": 14, "temporal_patch_size": 2,
               "merge_size": 2, "size": {"shortest_edge": 56 * 56, "longest_edge": 112 * 112}}  # fmt: skip

FAMILIES: dict[str, Family] = {
    f.name: f
    for f in [
        Family("llava", "LlavaForConditionalGeneration",
               Tokens(bos="<s>", eos="</s>", pad="<pad>", add_bos=True, extra={"image_token": "<image>"}),
               LLAVA_TEMPLATE, 32, _llava, vllm_rename=_clip_rename),
        Family("llava_next", "LlavaNextForConditionalGeneration",
               Tokens(bos="<s>", eos="</s>", pad="<pad>", add_bos=True, extra={"image_token": "<image>"}),
               LLAVA_NEXT_TEMPLATE, 32, _llava_next, vllm_rename=_clip_rename),
        Family("qwen2_vl", "Qwen2VLForConditionalGeneration", _QWEN_TOKENS, QWEN_TEMPLATE, 56, _qwen_vl("2"),
               video_processor=_QWEN_VIDEO),
        Family("qwen2_5_vl", "Qwen2_5_VLForConditionalGeneration", _QWEN_TOKENS, QWEN_TEMPLATE, 56,
               _qwen_vl("2.5"), video_processor=_QWEN_VIDEO),
        Family("internvl", "InternVLForConditionalGeneration",
               Tokens(bos=None, eos="<|im_end|>", pad="<|endoftext|>", add_bos=False,
                      extra={"context_image_token": "<IMG_CONTEXT>", "start_image_token": "<img>",
                             "end_image_token": "</img>", "video_token": "<video>"},
                      more=("<|im_start|>",)),
               INTERNVL_TEMPLATE, 32, _internvl,
               video_processor=_INTERNVL_VIDEO),
        Family("idefics3", "Idefics3ForConditionalGeneration",
               Tokens(bos="<|im_start|>", eos="<end_of_utterance>", pad="<|endoftext|>", add_bos=False,
                      more=("<fake_token_around_image>", "<image>", "<global-img>",
                            *(f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)))),
               IDEFICS3_TEMPLATE, 32, _idefics3),
        Family("gemma3", "Gemma3ForConditionalGeneration",
               Tokens(bos="<bos>", eos="<end_of_turn>", pad="<pad>", add_bos=True,
                      extra={"image_token": "<image_soft_token>", "boi_token": "<start_of_image>",
                             "eoi_token": "<end_of_image>"},
                      more=("<start_of_turn>",),
                      # SentencePiece holds runs of newlines as tokens; vLLM's Gemma3 processor needs them
                      words=("\n", "\n\n", "\n\n\n", "\n\n\n\n")),
               GEMMA3_TEMPLATE, 32, _gemma3, vllm_rename=_clip_rename),
        Family("paligemma", "PaliGemmaForConditionalGeneration",
               Tokens(bos="<bos>", eos="<eos>", pad="<pad>", add_bos=False, extra={"image_token": "<image>"},
                      # vLLM's PaliGemma processor looks up "\n" in the vocabulary (it ends every prompt)
                      words=("\n",)),
               PALIGEMMA_TEMPLATE, 32, _paligemma, vllm_rename=_clip_rename),
        Family("mistral3", "Mistral3ForConditionalGeneration",
               Tokens(bos="<s>", eos="</s>", pad="<pad>", add_bos=False,
                      more=("[INST]", "[/INST]", "[IMG]", "[IMG_BREAK]", "[IMG_END]")),
               MISTRAL3_TEMPLATE, 32, _mistral3),
    ]
}  # fmt: skip


# ---- building -----------------------------------------------------------------------------------
def build(name: str, out: Path | str, seed: int = 0) -> Path:
    """Write the tiny checkpoint of family `name` to `out` (created) and return it."""
    import torch
    from transformers import AutoModelForImageTextToText

    family = FAMILIES[name]
    out = Path(out)
    tok = build_tokenizer(family.tokens, family.chat_template)
    config, processor = family.build(tok)
    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_config(config, dtype=torch.float32).eval()
    if type(model).__name__ != family.architecture:
        raise RuntimeError(f"{name}: built a {type(model).__name__}, not a {family.architecture}")
    with torch.no_grad():  # zero-initialised matrices (Gemma3's image projection) would hide the image
        for param in model.parameters():
            if param.dim() >= 2 and not param.any():
                param.normal_(0.0, 0.02)
    for gc_key, value in (("eos_token_id", tok.eos_token_id), ("pad_token_id", tok.pad_token_id),
                          ("bos_token_id", tok.bos_token_id)):  # fmt: skip
        setattr(model.generation_config, gc_key, value)
    nudge(model, processor, family)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    if family.video_processor is not None:
        config_path = out / "processor_config.json"
        saved = json.loads(config_path.read_text())
        saved["video_processor"] = family.video_processor
        config_path.write_text(json.dumps(saved, indent=2, sort_keys=True) + "\n")
    if family.vllm_rename is not None:
        _rename_weights(out / "model.safetensors", family.vllm_rename)
    return out


def _rename_weights(path: Path, rename: Callable[[str], str]) -> None:
    from safetensors.torch import load_file, save_file

    state = load_file(str(path))
    save_file({rename(k): v.contiguous() for k, v in state.items()}, str(path), metadata={"format": "pt"})


def _calibration_inputs(backend: Any, size: int, answer: tuple[int, ...] = (), n: int = 6) -> list[dict]:
    """Model inputs of `n` probe questions on random images at `size` px, ending at the answer
    position, or after the `answer` tokens (teacher-forced): built by the backend's own input path."""
    from eagle.backends.hf import _append_tokens
    from probe.classes import CLASS_NAMES, question_text

    rng = np.random.default_rng(1234)
    images = rng.integers(0, 256, (n, 1, size, size, 3), np.uint8)
    texts = [backend.prompt_text(question_text(CLASS_NAMES[i])) for i in range(n)]
    return [_append_tokens(backend._inputs([t], im), answer, backend.answer_token_type)
            for t, im in zip(texts, images, strict=True)]  # fmt: skip


def _last_hidden(model: Any, inputs: list[dict]) -> Any:
    import torch

    rows = []
    with torch.inference_mode():
        for x in inputs:
            out = model(**x, output_hidden_states=True, use_cache=False)
            rows.append(out.hidden_states[-1][0, -1].float())
    return torch.stack(rows)  # (n, hidden): final (normed) hidden state at the last position


def _nudge_row(model: Any, inputs: list[dict], token_id: int) -> None:
    """Move the LM-head row of `token_id` along the mean hidden state until it wins by NUDGE_MARGIN."""
    import torch

    head = model.get_output_embeddings().weight
    h = _last_hidden(model, inputs)  # (n, d)
    u = h.mean(0)
    u = u / u.norm()
    along = h @ u  # (n,)
    if not bool((along > 0).all()):
        raise RuntimeError("the hidden states do not share a direction; cannot nudge this model")
    with torch.no_grad():
        logits = h @ head.float().T  # (n, V)
        others = logits.clone()
        others[:, token_id] = -torch.inf
        need = (others.max(1).values + NUDGE_MARGIN - logits[:, token_id]) / along
        head[token_id] += (need.clamp(min=0).max() * u).to(head.dtype)


def nudge(model: Any, processor: Any, family: Family) -> None:
    """Make the model answer "Yes" then end its turn, on every calibration question."""
    from eagle.backends.hf import HFBackend

    backend = HFBackend(model, processor=processor, retain_freed_memory=False)
    yes = backend.answer_token_ids("Is there a star in the image?", ANSWER)
    if len(yes) != 1:
        raise RuntimeError(f"{family.name}: {ANSWER!r} is {len(yes)} tokens {list(yes)}, not one")
    for _ in range(3):  # the two rows interact through the hidden states only via shared inputs
        _nudge_row(model, _calibration_inputs(backend, family.native_size), yes[0])
        after = _calibration_inputs(backend, family.native_size, yes)
        _nudge_row(model, after, processor.tokenizer.eos_token_id)
