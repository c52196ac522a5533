"""In-process transformers backend: generation with token ids and logprobs, and batched
teacher-forced target scoring of masked images (EAGLE's Scorer), for the probe model and any
Hugging Face image-text-to-text model with a processor and chat template.

Scoring builds one sequence per image: the chat prompt with the image, then the answer prefix
`answer_ids[:last target position]` (truncated after the last target), runs one forward pass per
batch with `use_cache=False`, and keeps logits only at the target positions. All images of a score
call share the prompt, so sequences have equal length; generation pads on the left with the
attention mask (and positions derived from it by `generate`).

The prompt is exactly the token ids the chat template renders (the processor adds no BOS of its
own, as vLLM's chat path adds none), so in-process and server scores are scores of the same tokens.

Example::

    >>> backend = HFBackend("probe/checkpoint")                                # doctest: +SKIP
    >>> ids = backend.answer_token_ids("Is there a star in the image?", "Yes")  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from eagle.backends import allocator
from eagle.backends.chat import ChatTokens, chat_messages
from eagle.backends.hf_checkpoint import check_checkpoint, load_model, load_processor
from eagle.backends.shared_prompt_inputs import SharedPromptInputs, run_processor
from eagle.types import Answer, BackendInfo, GenerationRequest, MaskedImages, RGBBatch, ScoreRequest, Scores

log = logging.getLogger(__name__)

DEFAULT_MEMORY_BUDGET_MB = 1024  # activation budget for one scoring forward pass
DEFAULT_MAX_BATCH = 64


class HFBackend(ChatTokens):
    """A local transformers model behind the `eagle.types.Backend` protocol.

    Args:
        model: a model directory (str/Path), or an already loaded model object (then `processor` is
            required). There is no default model: callers choose the checkpoint (the CLI's default
            is the shipped probe checkpoint).
        processor: the model's processor (loaded from `model` when it is a path; never with a video
            processor, which would need torchvision).
        device: torch device string. Default "cpu".
        dtype: "auto" (the checkpoint's own dtype), "float32", "bfloat16" or "float16".
        batch_size: images per forward pass; None picks one from `memory_budget_mb`. Never changes
            results, only speed.
        memory_budget_mb: activation memory one scoring forward may use when batch_size is None.
        retain_freed_memory: keep freed activation memory for the next batch (glibc thresholds,
            process-wide; see `eagle.backends.allocator`). Never changes results, only speed.
        fast_inputs: build scoring inputs through the verified shortcut of
            `eagle.backends.shared_prompt_inputs` where it applies (else the processor runs per
            image). Never changes results, only speed.
    """

    def __init__(
        self,
        model: Any,
        *,
        processor: Any = None,
        device: str = "cpu",
        dtype: str = "auto",
        batch_size: int | None = None,
        memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB,
        max_batch_size: int = DEFAULT_MAX_BATCH,
        model_id: str | None = None,
        retain_freed_memory: bool = True,
        fast_inputs: bool = True,
    ) -> None:
        import torch

        if model is None:
            raise ValueError(
                "HFBackend needs a model: a local checkpoint directory (the eagle-audit CLI passes the "
                "shipped probe checkpoint when --model is not given)"
            )
        if isinstance(model, (str, Path)):
            path = Path(model)
            check_checkpoint(path)
            model_id = model_id or str(path)
            model, processor = load_model(path, dtype=dtype, device=device), load_processor(path)
        elif processor is None:
            raise ValueError("pass the model's processor together with a loaded model object")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer or None, got {batch_size}")
        self.model = model.eval()
        self.processor = processor
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.memory_budget_mb = memory_budget_mb
        self.max_batch_size = max_batch_size
        self.model_id = model_id or getattr(model.config, "_name_or_path", "") or type(model).__name__
        self._prompt_cache: dict[tuple[str, str | None], str] = {}
        self._prompt_lens: dict[tuple[str, int, int], int] = {}
        self._shared_inputs = SharedPromptInputs(processor) if fast_inputs else None
        self.forward_passes = 0  # images scored so far (for benchmarks)
        if retain_freed_memory:
            allocator.retain_freed_memory()

    @property
    def answer_token_type(self) -> int:
        """The `token_type_ids` value of answer tokens: 1 for PaliGemma, whose 0 marks the prefix that
        attends bidirectionally (an answer token there would be seen by the positions predicting
        it); 0 ("text") elsewhere (Gemma3's 1 marks image tokens)."""
        return 1 if getattr(self.model.config, "model_type", None) == "paligemma" else 0

    @classmethod
    def from_pretrained(cls, path: str | Path, **kw: Any) -> HFBackend:
        """Load a local model directory."""
        return cls(model=path, **kw)

    def info(self) -> BackendInfo:
        """Provenance for run records: engine and version, model, dtype and device."""
        import transformers

        dtype = str(self.model.dtype).removeprefix("torch.")
        return BackendInfo(engine="hf", engine_version=transformers.__version__, model=self.model_id,
                           dtype=dtype, device=str(self.device))  # fmt: skip

    def close(self) -> None:
        """Drop the cached prompt inputs (the model is freed with the backend)."""
        self._prompt_cache.clear()
        self._prompt_lens.clear()
        if self._shared_inputs is not None:
            self._shared_inputs = SharedPromptInputs(self.processor)

    # ---- prompts and tokens --------------------------------------------------------------
    def prompt_text(self, prompt: str, system: str | None = None) -> str:
        """The chat-template text up to and including the generation prompt."""
        key = (prompt, system)
        if key not in self._prompt_cache:
            self._prompt_cache[key] = self.processor.apply_chat_template(
                chat_messages(prompt, system=system), add_generation_prompt=True, tokenize=False
            )
        return self._prompt_cache[key]

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _render_chat(self, prompt: str, system: str | None, answer: str | None) -> list[int]:
        if answer is None:
            return self._encode(self.prompt_text(prompt, system))
        text = self.processor.apply_chat_template(
            chat_messages(prompt, system=system, answer=answer), continue_final_message=True, tokenize=False
        )
        return self._encode(text)

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def prompt_token_ids(
        self, image: np.ndarray, prompt: str, answer_ids: Sequence[int] = (), system: str | None = None
    ) -> tuple[int, ...]:
        """The token ids this backend scores for `prompt` on `image` followed by `answer_ids`: the
        chat template's rendering with the image placeholder expanded, then the answer tokens."""
        ids = self._score_inputs(self.prompt_text(prompt, system), np.asarray(image)[None])["input_ids"]
        return tuple(int(t) for t in ids[0]) + tuple(int(t) for t in answer_ids)

    # ---- scoring -------------------------------------------------------------------------
    def _inputs(self, texts: list[str], images: RGBBatch | Sequence[np.ndarray]) -> dict:
        """Processor inputs for texts and RGB uint8 images (the processor resizes/normalises)."""
        inputs = run_processor(self.processor, texts, list(images))
        return {k: v.to(self.device) for k, v in inputs.items()}

    def _score_inputs(self, text: str, images: RGBBatch | MaskedImages) -> dict:
        """Inputs for one prompt over a chunk of same-size images, composed or described: the verified
        shortcut when the processor allows it (same tensors, far cheaper), else the processor."""
        inputs = None
        if self._shared_inputs is not None:
            if isinstance(images, MaskedImages):
                build = self._shared_inputs.masked(text, images)
                inputs = None if build is None else build(images.keep)
            else:
                inputs = self._shared_inputs(text, images)
        if inputs is None:
            if isinstance(images, MaskedImages):
                images = images.compose()
            return self._inputs([text] * len(images), images)
        return {k: v.to(self.device) for k, v in inputs.items()}

    def _prompt_len(self, text: str, size: tuple[int, int], inputs_for_one: Callable[[], dict]) -> int:
        """Prompt tokens with one image of this size (placeholders expanded), which sizes the
        scoring batches; built once per prompt and image size, not on every score call."""
        key = (text, *size)
        if key not in self._prompt_lens:
            self._prompt_lens[key] = int(inputs_for_one()["input_ids"].shape[1])
        return self._prompt_lens[key]

    def auto_batch_size(self, seq_len: int) -> int:
        """Images per forward within the memory budget, from a rough per-token activation size."""
        if self.batch_size is not None:
            return self.batch_size
        cfg = getattr(self.model.config, "text_config", self.model.config)
        hidden = getattr(cfg, "hidden_size", 1024)
        inter = getattr(cfg, "intermediate_size", 4 * hidden)
        heads = getattr(cfg, "num_attention_heads", 8)
        # live activations of one layer (hidden states, MLP, attention scores), float32, x2 slack
        per_image = 2 * 4 * seq_len * (6 * hidden + 2 * inter + heads * seq_len)
        return int(max(1, min(self.max_batch_size, self.memory_budget_mb * 2**20 // per_image)))

    def score(self, images: RGBBatch, request: ScoreRequest) -> Scores:
        """Probabilities (B, N) float64 of the request's targets for each image (B, H, W, 3) uint8."""
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(f"images must be a uint8 batch (B, H, W, 3), got {images.shape} {images.dtype}")
        text = self.prompt_text(request.prompt, request.system)
        return self._score_batches(
            len(images), images.shape[1:3], text, lambda a, b: self._score_inputs(text, images[a:b]), request
        )

    def score_masked(self, masked: MaskedImages, request: ScoreRequest) -> Scores:
        """`score(masked.compose(), request)`, without composing full-size masked images where the
        verified input shortcut resizes them from their regions (the same tensors, bit for bit)."""
        text = self.prompt_text(request.prompt, request.system)
        image, labels, keep = masked.image, masked.labels, np.asarray(masked.keep, bool)
        shape_ok = image.ndim == 3 and image.shape[2] == 3 and labels.shape == image.shape[:2]
        if not shape_ok or image.dtype != np.uint8:
            raise ValueError(
                f"masked images need a uint8 image (H, W, 3) and a label map (H, W), got {image.shape} "
                f"{image.dtype} and {labels.shape}"
            )

        def inputs(a: int, b: int) -> dict:
            return self._score_inputs(text, MaskedImages(image, labels, keep[a:b]))

        return self._score_batches(len(keep), image.shape[:2], text, inputs, request)

    def _score_batches(
        self,
        n: int,
        size: tuple[int, int],
        text: str,
        inputs_for: Callable[[int, int], dict],
        request: ScoreRequest,
    ) -> Scores:
        """Scores of n images of this size for prompt `text`, whose model inputs
        `inputs_for(start, stop)` builds, in batches that fit the memory budget."""
        import torch

        prefix = list(request.answer_ids[: request.last_position])  # truncate after the last target
        positions = torch.tensor(request.target_positions, device=self.device)
        targets = torch.tensor(request.target_ids, device=self.device)
        out = np.empty((n, request.n_targets), np.float64)
        start = 0
        prompt_len = self._prompt_len(text, size, lambda: inputs_for(0, 1)) if n else 0
        step = self.auto_batch_size(prompt_len + len(prefix)) if n else 1
        while start < n:
            stop = min(n, start + step)
            inputs = _append_tokens(inputs_for(start, stop), prefix, self.answer_token_type)
            keep = len(prefix) + 1  # logits at the last prompt token and at each prefix token
            try:
                with torch.inference_mode():
                    logits = self.model(**inputs, use_cache=False, logits_to_keep=keep).logits  # (b, keep, V)
            except torch.OutOfMemoryError:
                if stop - start == 1:
                    raise
                step = max(1, (stop - start) // 2)  # the estimate was too generous: halve and retry
                log.warning("out of memory scoring %d images; retrying in batches of %d", stop - start, step)
                continue
            logp = torch.log_softmax(logits.float(), dim=-1)
            picked = logp[:, positions, targets]  # (b, N): position t reads logits index t
            out[start:stop] = picked.exp().double().cpu().numpy()
            self.forward_passes += stop - start
            start = stop
        return out

    # ---- generation ----------------------------------------------------------------------
    def generate(self, requests: Sequence[GenerationRequest]) -> list[Answer]:
        """Greedy answers with per-token logprobs, batched with left padding."""
        import torch

        answers: list[Answer] = []
        step = self.batch_size or 16
        eos = self._eos_ids()
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else min(eos)
        old_side = self.tokenizer.padding_side
        self.tokenizer.padding_side = "left"
        try:
            for start in range(0, len(requests), step):
                group = list(requests[start : start + step])
                max_new = max(r.max_new_tokens for r in group)
                texts = [self.prompt_text(r.prompt, r.system) for r in group]
                inputs = self._inputs(texts, [r.image for r in group])
                with torch.inference_mode():
                    gen = self.model.generate(
                        **inputs,
                        max_new_tokens=max_new,
                        do_sample=False,
                        output_logits=True,
                        return_dict_in_generate=True,
                        pad_token_id=pad,
                    )
                new = gen.sequences[:, inputs["input_ids"].shape[1] :]
                logp = torch.log_softmax(torch.stack(gen.logits, dim=1).float(), dim=-1)  # (b, T, V)
                for i, r in enumerate(group):
                    ids, lps, reason = [], [], "length"
                    for t in range(min(new.shape[1], r.max_new_tokens)):
                        tok = int(new[i, t])
                        if tok in eos:
                            reason = "stop"
                            break
                        ids.append(tok)
                        lps.append(float(logp[i, t, tok]))
                    answers.append(
                        Answer(
                            text=self.decode(ids),
                            token_ids=tuple(ids),
                            logprobs=tuple(lps),
                            finish_reason=reason,
                            request_id=r.request_id,
                        )
                    )
        finally:
            self.tokenizer.padding_side = old_side
        return answers

    def _eos_ids(self) -> set[int]:
        eos = getattr(self.model.generation_config, "eos_token_id", None)
        if eos is None:
            eos = self.tokenizer.eos_token_id
        return set(eos) if isinstance(eos, (list, tuple)) else {int(eos)}

    def answer_images(self, images: RGBBatch, prompt: str, max_new_tokens: int = 8) -> list[str]:
        """Answers to one prompt for a batch of images: the `regenerate` callable of a correction scan."""
        requests = [
            GenerationRequest(image=im, prompt=prompt, max_new_tokens=max_new_tokens) for im in images
        ]
        return [a.text for a in self.generate(requests)]


def _append_tokens(inputs: dict, ids: Sequence[int], token_type: int = 0) -> dict:
    """`inputs` with the token ids `ids` appended to every sequence: text tokens, attended to, so
    `token_type_ids` gets `token_type` for them and any other per-token tensor (mm_token_type_ids)
    0 ("text")."""
    import torch

    if not ids:
        return inputs
    prompt = inputs["input_ids"]  # (b, L)
    n = len(prompt)
    out = dict(inputs)
    for key, value in inputs.items():
        if value.dim() >= 2 and tuple(value.shape[:2]) == tuple(prompt.shape):
            if key == "input_ids":
                tail = torch.tensor(list(ids), dtype=value.dtype, device=value.device).expand(n, -1)
            elif key == "attention_mask":
                tail = torch.ones((n, len(ids)), dtype=value.dtype, device=value.device)
            else:
                fill = token_type if key == "token_type_ids" else 0
                tail = torch.full((n, len(ids)), fill, dtype=value.dtype, device=value.device)
            out[key] = torch.cat([value, tail], dim=1)
    return out
