"""Backend over one or more vLLM OpenAI-compatible servers (the production path).

Generation is a chat completion with the image as a lossless PNG data URL. Scoring is teacher
forcing: the answer prefix goes into the prompt as the final assistant message
(`continue_final_message`), and `prompt_logprobs: 0` returns the log-probability of every prompt
token; `return_token_ids` lets every response be checked token by token (see
`eagle.backends.teacher_forcing`). Many requests are in flight at once (bounded by `concurrency`)
on a private event loop, so the backend is called from plain synchronous code.

Failures are bounded: every attempt has a timeout, connection errors / 5xx / 429 / timeouts /
malformed bodies are retried with exponential backoff and jitter on the next endpoint, and the
last failure is raised as a `BackendError` naming the endpoint. Nothing is ever returned for a
request that did not succeed.

    >>> backend = VLLMServerBackend(model="probe", endpoint="http://127.0.0.1:8000,http://10.0.0.2:8000")
    >>> backend.score(images, request)            # (B, N) float64 probabilities
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from eagle.backends.chat import ChatTokens, chat_messages
from eagle.backends.errors import (
    BackendError,
    BadResponseError,
    ModelNotServedError,
    PromptMismatchError,
    TokenBoundaryError,
)
from eagle.backends.http_transport import (
    API_KEY_ENVS,
    DEFAULT_CONNECT_TIMEOUT_S,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT_S,
    Transport,
    parse_endpoints,
)
from eagle.backends.png import data_url
from eagle.backends.teacher_forcing import Variant, plan_variants, read_targets
from eagle.types import Answer, BackendInfo, GenerationRequest, RGBBatch, ScoreRequest, Scores

log = logging.getLogger(__name__)
# Requests in flight by default. One EAGLE step sends 16-128 images; an audit explaining several
# targets at once needs room for more than one step, and vLLM batches up to 128+ sequences.
DEFAULT_CONCURRENCY = 64


class VLLMServerBackend(ChatTokens):
    """`eagle.types.Backend` over vLLM OpenAI-compatible servers.

    Args:
        model: served model name ("model" in requests). None: the single model the server lists.
        endpoint: base URL(s), comma-separated or a list; requests rotate over them (replicas).
        api_key: bearer token. Default: $EAGLE_AUDIT_API_KEY, else $VLLM_API_KEY, else none.
        concurrency: requests in flight at once across all endpoints and all threads calling this
            backend. Default: 64.
        timeout_s: per-attempt limit in seconds (connect, send, whole answer). Default: 120.
        connect_timeout_s: limit for opening a connection. Default: 10.
        deadline_s: limit for one request over all its attempts and backoff. Default: None (then
            at most (max_retries + 1) * timeout_s plus backoff).
        max_retries: extra attempts after a transient failure. Default: 4.
        max_response_bytes: largest response body accepted. Default: 64 MiB.
        backoff_s: first retry delay in seconds, doubled per retry up to `max_backoff_s`.
        top_logprobs: alternatives returned per generated token in `Answer.top_logprobs`. Default 0.
        batch_size: ignored (the server forms batches from concurrent requests; see `concurrency`).
    """

    def __init__(
        self,
        model: str | None = None,
        endpoint: str | Sequence[str] = "http://127.0.0.1:8000",
        *,
        api_key: str | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
        max_retries: int = DEFAULT_MAX_RETRIES,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
        deadline_s: float | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        top_logprobs: int = 0,
        batch_size: int | None = None,
    ) -> None:
        # batch_size: accepted for parity with HFBackend's constructor; the server batches the
        # concurrent requests itself, so the knob here is `concurrency`.
        del batch_size
        if api_key is None:
            api_key = next((os.environ[k] for k in API_KEY_ENVS if os.environ.get(k)), None)
        self.endpoints = parse_endpoints(endpoint)
        self._requested_model = None if model is None else str(model)
        self.top_logprobs = top_logprobs
        self._t = Transport(
            self.endpoints,
            api_key=api_key,
            concurrency=concurrency,
            timeout_s=timeout_s,
            connect_timeout_s=connect_timeout_s,
            max_retries=max_retries,
            backoff_s=backoff_s,
            max_backoff_s=max_backoff_s,
            deadline_s=deadline_s,
            max_response_bytes=max_response_bytes,
        )
        self._model: str | None = None
        self._server_version: str | None = None
        self._ready = threading.Lock()
        self._tok_cache: dict[tuple, tuple[int, ...]] = {}
        self._content_cache: dict[tuple, str] = {}
        self._checked_prompts: set[tuple] = set()  # (prompt, system, answer part, image size) seen equal

    # ---- set-up -------------------------------------------------------------------------------
    @property
    def model_id(self) -> str:
        return self._ensure_model()

    @property
    def concurrency(self) -> int:
        return self._t.concurrency

    def info(self) -> BackendInfo:
        """Provenance for run records: engine, version, model name and endpoints. The dtype is the
        server's (set where it was started), which the OpenAI API does not report: None."""
        model = self._ensure_model()
        return BackendInfo(engine="vllm-server", engine_version=self._server_version, model=model,
                           dtype=None, endpoints=list(self.endpoints))  # fmt: skip

    def _ensure_model(self) -> str:
        with self._ready:
            if self._model is None:
                self._model = self._t.run(self._resolve_model())
            return self._model

    async def _resolve_model(self) -> str:
        def parse(data: Any, base: str) -> list[str]:
            try:
                return [m["id"] for m in data["data"]]
            except (KeyError, TypeError) as e:
                raise BadResponseError(f"{base}/v1/models is not an OpenAI model list: {str(data)[:120]}",
                                       endpoint=base) from e  # fmt: skip

        listed = await self._t.gather(
            [self._t.request("GET", "/v1/models", parse=parse, endpoint=ep) for ep in self.endpoints]
        )
        chosen = self._requested_model
        for ep, names in zip(self.endpoints, listed, strict=True):
            if chosen is None:
                if len(names) != 1:
                    raise ModelNotServedError(
                        f"vLLM server at {ep} serves {names}; pass --model with one of them", endpoint=ep
                    )
                chosen = names[0]
            elif chosen not in names:
                raise ModelNotServedError(
                    f"vLLM server at {ep} does not serve model {chosen!r}; it serves {names}. "
                    "Pass --model with one of them (the server's --served-model-name)",
                    endpoint=ep,
                )
        try:
            version = await self._t.request("GET", "/version", endpoint=self.endpoints[0])
            self._server_version = str(version.get("version"))
        except BackendError:
            self._server_version = None  # not every OpenAI-compatible server has /version
        assert chosen is not None
        return chosen

    # ---- messages and tokenisation ----------------------------------------------------------
    @staticmethod
    def _messages(
        prompt: str, system: str | None, image_url: str | None, answer: str | None = None
    ) -> list[dict]:
        image = None if image_url is None else {"type": "image_url", "image_url": {"url": image_url}}
        return chat_messages(prompt, system=system, answer=answer, image=image)

    def _tokenize_chat(
        self, messages: list[dict], *, continue_final: bool, cache: bool = True
    ) -> tuple[int, ...]:
        """The server's rendering of `messages` (/tokenize; with an image, placeholders expanded).
        Text-only renderings are cached; `cache=False` for one-off renderings with an image."""
        key = (json.dumps(messages, sort_keys=True), continue_final)
        if key not in self._tok_cache or not cache:
            body = {
                "model": self._ensure_model(),
                "messages": messages,
                "add_generation_prompt": not continue_final,
                "continue_final_message": continue_final,
            }

            def parse(data: Any, base: str) -> tuple[int, ...]:
                if not isinstance(data, dict) or not isinstance(data.get("tokens"), list):
                    raise BadResponseError(f"{base}/tokenize returned no token list", endpoint=base)
                return tuple(int(t) for t in data["tokens"])

            ids = self._t.run(self._t.request("POST", "/tokenize", body, parse=parse))
            if not cache:
                return ids
            self._tok_cache[key] = ids
        return self._tok_cache[key]

    def _render_chat(self, prompt: str, system: str | None, answer: str | None) -> tuple[int, ...]:
        messages = self._messages(prompt, system, None, answer)
        return self._tokenize_chat(messages, continue_final=answer is not None)

    def prompt_token_ids(
        self, image: np.ndarray, prompt: str, answer_ids: Sequence[int] = (), system: str | None = None
    ) -> tuple[int, ...]:
        """The token ids the server scores for `prompt` on `image` followed by `answer_ids`, as its
        /tokenize renders them (image placeholders expanded)."""
        part = tuple(int(t) for t in answer_ids)
        content = self._content_for(prompt, system, part) if part else None
        url = self._t.run(data_url(np.asarray(image)))
        messages = self._messages(prompt, system, url, content)
        return self._tokenize_chat(messages, continue_final=bool(part), cache=False)

    def decode(self, ids: Sequence[int]) -> str:
        body = {"model": self.model_id, "tokens": [int(i) for i in ids]}

        def parse(data: Any, base: str) -> str:
            if not isinstance(data, dict) or not isinstance(data.get("prompt"), str):
                raise BadResponseError(f"{base}/detokenize returned no text", endpoint=base)
            return data["prompt"]

        return self._t.run(self._t.request("POST", "/detokenize", body, parse=parse))

    def _content_for(self, prompt: str, system: str | None, part: tuple[int, ...]) -> str:
        """Assistant message text that the chat template turns into exactly `part` after the
        generation prompt. Templates often add a separator (a space) before the answer that the
        model's first answer token already carries, so the decoded text is tried with and without
        its leading whitespace."""
        key = (prompt, system, part)
        if key in self._content_cache:
            return self._content_cache[key]
        text = self.decode(part)
        tried = []
        for candidate in dict.fromkeys([text, text.lstrip(), text[1:]]):
            if not candidate:
                continue
            got = self.answer_token_ids(prompt, candidate, system)
            if got == part:
                self._content_cache[key] = candidate
                return candidate
            tried.append((candidate, list(got)))
        raise TokenBoundaryError(
            f"model {self.model_id!r}: cannot place the answer tokens {list(part)} in the prompt through the "
            f"chat template: {', '.join(f'{c!r} tokenises as {g}' for c, g in tried)}. Score with a token-id "
            "backend (vllm-engine, hf) or re-tokenise the answer with answer_token_ids()",
            endpoint=self.endpoints[0],
        )

    # ---- generation -----------------------------------------------------------------------------
    def generate(self, requests: Sequence[GenerationRequest]) -> list[Answer]:
        """Greedy answers for all requests, concurrently; same order as `requests`."""
        model = self._ensure_model()
        coros = [self._generate_one(model, r) for r in requests]
        return self._t.run(self._t.gather(coros))

    async def _generate_one(self, model: str, req: GenerationRequest) -> Answer:
        url = await data_url(req.image)
        body = {
            "model": model,
            "messages": self._messages(req.prompt, req.system, url),
            "max_tokens": req.max_new_tokens,
            "temperature": 0.0,
            "top_p": 1.0,
            "repetition_penalty": 1.0,
            "logprobs": True,
            "top_logprobs": self.top_logprobs,
            "return_token_ids": True,
            "return_tokens_as_token_ids": True,
        }

        def parse(data: Any, base: str) -> Answer:
            try:
                choice = data["choices"][0]
                ids = [int(t) for t in choice["token_ids"]]
                content = choice["logprobs"]["content"]
                text = choice["message"]["content"] or ""
                finish = choice["finish_reason"]
                logprobs = [float(c["logprob"]) for c in content]
                tops = [
                    {
                        int(t["token"].split(":", 1)[1]): float(t["logprob"])
                        for t in c.get("top_logprobs") or []
                    }
                    for c in content
                ]
                seen = [int(c["token"].split(":", 1)[1]) for c in content]
            except (KeyError, IndexError, TypeError, ValueError, AttributeError) as e:
                raise BadResponseError(
                    f"vLLM server at {base} returned a chat completion without token ids/logprobs "
                    f"({type(e).__name__}: {e}); is it vLLM >= 0.10 (return_token_ids)?",
                    endpoint=base,
                ) from e
            if seen != ids:
                raise BadResponseError(
                    f"vLLM server at {base}: logprob tokens {seen} do not match token_ids {ids}",
                    endpoint=base,
                )
            # vLLM keeps the EOS (stop_reason None) or stop token id in token_ids; Answer excludes it.
            if finish == "stop" and ids and not isinstance(choice.get("stop_reason"), str):
                ids, logprobs, tops = ids[:-1], logprobs[:-1], tops[:-1]
            return Answer(
                text=text,
                token_ids=tuple(ids),
                logprobs=tuple(logprobs),
                finish_reason="stop" if finish == "stop" else "length",
                request_id=req.request_id,
                top_logprobs=tuple(tops) if self.top_logprobs else (),
            )

        return await self._t.request("POST", "/v1/chat/completions", body, parse=parse)

    # ---- scoring --------------------------------------------------------------------------------
    def score(self, images: RGBBatch, request: ScoreRequest) -> Scores:
        """Probabilities (B, N) of the request's targets for each image, teacher-forced.

        One chat request per image per prompt variant (answer-token targets share one variant; each
        distinct counter token adds one), all in flight at once up to `concurrency`.
        """
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(f"images must be a (B, H, W, 3) uint8 batch, got {images.dtype} {images.shape}")
        model = self._ensure_model()
        variants = plan_variants(request)
        contents = [self._content_for(request.prompt, request.system, v.part) for v in variants]
        out = np.full((images.shape[0], request.n_targets), np.nan, np.float64)  # (B, N)
        if images.shape[0] == 0:
            return out

        first: dict[int, list[int]] = {}  # variant -> the prompt ids the server scored for image 0

        async def one_image(i: int) -> None:
            url = await data_url(images[i])
            results = await asyncio.gather(
                *(
                    self._score_variant(model, request, url, v, c)
                    for v, c in zip(variants, contents, strict=True)
                )
            )
            for j, (reads, ids) in enumerate(results):
                if i == 0:
                    first[j] = ids
                for col, prob in reads:
                    out[i, col] = prob

        self._t.run(self._t.gather([one_image(i) for i in range(images.shape[0])]))
        if np.isnan(out).any():  # every column is read by exactly one variant; guard anyway
            raise BackendError(
                f"internal error: unscored targets in {np.argwhere(np.isnan(out))[:5].tolist()}"
            )
        for j, (variant, content) in enumerate(zip(variants, contents, strict=True)):
            self._check_prompt(request, variant, content, images[0], first[j])
        return out

    def _check_prompt(
        self, request: ScoreRequest, variant: Variant, content: str, image: np.ndarray, scored: list[int]
    ) -> None:
        """Once per prompt (and image size): the ids the server scored must be the ids its /tokenize
        renders for the same messages, so a prompt that differs between the two paths (a BOS added on
        one, a template applied differently) is an error, never a silent score difference."""
        key = (request.prompt, request.system, variant.part, image.shape)
        if key in self._checked_prompts:
            return
        url = self._t.run(data_url(image))
        messages = self._messages(request.prompt, request.system, url, content)
        rendered = self._tokenize_chat(messages, continue_final=True, cache=False)
        if tuple(scored) != rendered:
            at = next((k for k, (a, b) in enumerate(zip(scored, rendered, strict=False)) if a != b),
                      min(len(scored), len(rendered)))  # fmt: skip
            window = slice(max(0, at - 2), at + 4)
            raise PromptMismatchError(
                f"model {self.model_id!r}: the server scored prompt ids that differ from what its /tokenize "
                f"renders for the same messages, from position {at}: scored {scored[window]}..., rendered "
                f"{list(rendered[window])}... (lengths {len(scored)} and {len(rendered)}). Check the "
                "server's chat template and special-token settings",
                endpoint=self.endpoints[0],
            )
        self._checked_prompts.add(key)

    async def _score_variant(
        self, model: str, request: ScoreRequest, url: str, variant: Variant, content: str
    ) -> tuple[list[tuple[int, float]], list[int]]:
        """The (target column, probability) reads of one variant on one image, and the prompt ids scored."""
        body = {
            "model": model,
            "messages": self._messages(request.prompt, request.system, url, content),
            "add_generation_prompt": False,
            "continue_final_message": True,
            "max_tokens": 1,
            "temperature": 0.0,
            "prompt_logprobs": 0,
            "return_token_ids": True,
        }

        def parse(data: Any, base: str) -> tuple[list[tuple[int, float]], list[int]]:
            try:
                ids = [int(t) for t in data["prompt_token_ids"]]
                raw = data["prompt_logprobs"]
                n, a = len(ids), len(variant.part)
                if not isinstance(raw, list) or len(raw) != n:
                    raise TypeError(
                        f"{len(raw) if isinstance(raw, list) else type(raw)} logprob entries for {n} ids"
                    )
                # Convert only the answer tail; the image placeholder positions are never read.
                lps: list[dict[int, float] | None] = [None] * (n - a) + [
                    None if e is None else {int(k): float(v["logprob"]) for k, v in e.items()}
                    for e in raw[n - a :]
                ]
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                raise BadResponseError(
                    f"vLLM server at {base} returned no usable prompt_logprobs/prompt_token_ids "
                    f"({type(e).__name__}: {e}); scoring needs vLLM's prompt_logprobs and return_token_ids",
                    endpoint=base,
                ) from e
            return read_targets(variant, ids, lps, where=f"vLLM server at {base} (model {model!r})"), ids

        return await self._t.request("POST", "/v1/chat/completions", body, parse=parse)

    # ---- lifetime -----------------------------------------------------------------------------
    def close(self) -> None:
        self._t.close()

    def __enter__(self) -> VLLMServerBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self._t.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
