"""Backend over an in-process vLLM engine (`vllm.LLM`), for one box that owns its GPU.

Optional: install with `pip install 'eagle-audit[vllm]'` (GPU) or run inside the environment
`eagle-audit serve setup` creates (CPU). vLLM is imported when the backend is built, never by
`import eagle`.

Prompts are token ids (the chat template's generation prompt with one unexpanded image placeholder,
then the answer tokens), so the answer tokens reach the model exactly as generated -- no text
round trip at the prompt/answer boundary. Scoring reads `prompt_logprobs` (see
`eagle.backends.teacher_forcing`); all masked images of a call go to the engine in one
`generate()` call, which batches them itself. Generation and scoring use separate `generate()`
calls (vLLM's V1 runner corrupts logprobs in batches that mix request kinds).

On CPU, vLLM forces the `spawn` start method: scripts that build this backend need an
`if __name__ == "__main__":` guard.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from eagle.backends.chat import ChatTokens, chat_messages
from eagle.backends.teacher_forcing import plan_variants, read_targets
from eagle.types import Answer, BackendInfo, GenerationRequest, RGBBatch, ScoreRequest, Scores

log = logging.getLogger(__name__)


class VLLMEngineBackend(ChatTokens):
    """`eagle.types.Backend` over `vllm.LLM`.

    Args:
        model: model directory (or hub id on a host that reaches the hub). No default: callers
            choose the checkpoint (the CLI's default is the shipped probe checkpoint).
        dtype: engine dtype; "auto" (default) is the checkpoint's own, as for the hf backend.
        max_model_len: context length; keep it small on CPU. Default 1024.
        enforce_eager: skip graph compilation (faster start-up, slower steps). Default True.
        mm_processor_kwargs: image processor overrides, e.g. fixed min/max pixels for Qwen-VL so every
            masked image gives the same number of image tokens.
        top_logprobs: alternatives per generated token in `Answer.top_logprobs`. Default 0.
        batch_size: ignored (the engine batches every call's prompts itself).
        **llm_kwargs: passed to `vllm.LLM` unchanged (e.g. `max_num_seqs`, `gpu_memory_utilization`).
    """

    def __init__(
        self,
        model: str | Path,
        *,
        dtype: str = "auto",
        max_model_len: int = 1024,
        enforce_eager: bool = True,
        mm_processor_kwargs: dict | None = None,
        top_logprobs: int = 0,
        model_id: str | None = None,
        batch_size: int | None = None,
        **llm_kwargs: Any,
    ) -> None:
        del batch_size  # the engine schedules batches itself (max_num_seqs / max_num_batched_tokens)
        try:
            import vllm
        except ImportError as e:
            raise ImportError(
                "the vllm-engine backend needs vLLM in this Python environment: `pip install "
                "'eagle-audit[vllm]'` on a GPU host, or on CPU run inside the environment that "
                "`eagle-audit serve setup` creates (or use --backend vllm-server)"
            ) from e
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
        if model is None:
            raise ValueError(
                "VLLMEngineBackend needs a model: a checkpoint directory (the eagle-audit CLI passes the "
                "shipped probe checkpoint when --model is not given)"
            )
        if Path(model).is_dir() and not (Path(model) / "config.json").exists():
            raise FileNotFoundError(f"no model at {model} (config.json missing): pass a model directory")
        self.model_id = model_id or str(model)
        if Path(model).is_dir():
            # "auto" is the checkpoint's dtype, as for the hf backend (vLLM's own "auto" runs a float32
            # checkpoint in 16 bits: probabilities off by ~1e-2 on the probe model)
            from eagle.backends.hf_checkpoint import resolve_dtype

            dtype = resolve_dtype(Path(model), dtype)
        self.dtype = dtype
        self.top_logprobs = top_logprobs
        self.engine_version = vllm.__version__
        kwargs: dict[str, Any] = dict(
            model=str(model),
            dtype=dtype,
            max_model_len=max_model_len,
            enforce_eager=enforce_eager,
            limit_mm_per_prompt={"image": 1, "video": 0},
            generation_config="vllm",  # explicit sampling params only
            seed=0,
        )
        # transformers' PIL image processors, as the in-process backend and `ManagedServer` use:
        # vLLM's environment has torchvision, whose resize differs from PIL's in the last bits
        kwargs["mm_processor_kwargs"] = {"use_fast": False, **(mm_processor_kwargs or {})}
        kwargs.update(llm_kwargs)
        self.llm = vllm.LLM(**kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self._head_cache: dict[tuple[str, str | None], list[int]] = {}

    def info(self) -> BackendInfo:
        """Provenance for run records: engine and version, model and the dtype the engine runs in."""
        config = getattr(getattr(self.llm, "llm_engine", None), "model_config", None)
        dtype = str(getattr(config, "dtype", self.dtype)).removeprefix("torch.")
        return BackendInfo(engine="vllm-engine", engine_version=self.engine_version, model=self.model_id,
                           dtype=dtype)  # fmt: skip

    def close(self) -> None:
        """Shut the engine down (its worker processes with it)."""
        llm = self.__dict__.pop("llm", None)
        core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            core.shutdown()

    # ---- prompts and tokens --------------------------------------------------------------
    def _render_chat(self, prompt: str, system: str | None, answer: str | None) -> list[int]:
        text = self.tokenizer.apply_chat_template(
            chat_messages(prompt, system=system, answer=answer),
            add_generation_prompt=answer is None,
            continue_final_message=answer is not None,
            tokenize=False,
        )
        # The template writes any BOS itself (as vLLM's chat endpoint assumes).
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def head_ids(self, prompt: str, system: str | None = None) -> list[int]:
        """Token ids of the chat prompt up to the generation prompt, one unexpanded image placeholder."""
        key = (prompt, system)
        if key not in self._head_cache:
            self._head_cache[key] = self._render_chat(prompt, system, None)
        return self._head_cache[key]

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    @staticmethod
    def _pil(image: np.ndarray) -> Any:
        from PIL import Image

        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.dtype} {image.shape}")
        return Image.fromarray(image, "RGB")

    # ---- scoring -------------------------------------------------------------------------
    def score(self, images: RGBBatch, request: ScoreRequest) -> Scores:
        """Probabilities (B, N) of the request's targets for each image, in one engine call."""
        from vllm import SamplingParams

        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(f"images must be a (B, H, W, 3) uint8 batch, got {images.dtype} {images.shape}")
        head = self.head_ids(request.prompt, request.system)
        variants = plan_variants(request)
        prompts = [
            {"prompt_token_ids": head + list(v.part), "multi_modal_data": {"image": self._pil(im)}}
            for im in images
            for v in variants
        ]
        # prompt_logprobs must be given to the constructor (it sets the prefix-cache policy).
        sp = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0, detokenize=False)
        outs = self.llm.generate(prompts, sp, use_tqdm=False) if prompts else []
        out = np.full((images.shape[0], request.n_targets), np.nan, np.float64)  # (B, N)
        for j, o in enumerate(outs):
            i, v = divmod(j, len(variants))
            lps = [None if e is None else {k: lp.logprob for k, lp in e.items()} for e in o.prompt_logprobs]
            for col, p in read_targets(
                variants[v], o.prompt_token_ids, lps, where=f"vLLM engine ({self.model_id})"
            ):
                out[i, col] = p
        return out

    # ---- generation ----------------------------------------------------------------------
    def generate(self, requests: Sequence[GenerationRequest]) -> list[Answer]:
        """Greedy answers with per-token logprobs, all requests in one engine call."""
        from vllm import SamplingParams

        prompts = [
            {
                "prompt_token_ids": self.head_ids(r.prompt, r.system),
                "multi_modal_data": {"image": self._pil(r.image)},
            }
            for r in requests
        ]
        params = [
            SamplingParams(max_tokens=r.max_new_tokens, temperature=0.0, logprobs=self.top_logprobs, seed=0)
            for r in requests
        ]
        outs = self.llm.generate(prompts, params, use_tqdm=False) if prompts else []
        eos = self.tokenizer.eos_token_id
        answers = []
        for r, o in zip(requests, outs, strict=True):
            c = o.outputs[0]
            ids = list(c.token_ids)
            entries = list(c.logprobs or [])
            if c.finish_reason == "stop" and ids and (ids[-1] == eos or c.stop_reason is not None):
                ids, entries = ids[:-1], entries[:-1]  # Answer.token_ids excludes the EOS / stop token
            lps = tuple(float(e[t].logprob) for t, e in zip(ids, entries, strict=True))
            tops = (
                tuple({k: float(v.logprob) for k, v in e.items()} for e in entries)
                if self.top_logprobs
                else ()
            )
            answers.append(
                Answer(text=self.decode(ids), token_ids=tuple(ids), logprobs=lps,
                       finish_reason="stop" if c.finish_reason == "stop" else "length",
                       request_id=r.request_id, top_logprobs=tops)
            )  # fmt: skip
        return answers
