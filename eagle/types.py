"""Shared types of the attribution method: images, score requests, the Scorer protocol, and the
model Backend protocol that every model access path (in-process transformers, vLLM server, vLLM
engine) satisfies.

Images cross every boundary as RGB uint8 arrays: one image is (H, W, 3), a batch is (B, H, W, 3).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeAlias, TypedDict, runtime_checkable

import numpy as np

RGBImage: TypeAlias = np.ndarray  # (H, W, 3) uint8, RGB
RGBBatch: TypeAlias = np.ndarray  # (B, H, W, 3) uint8, RGB
LabelMap: TypeAlias = np.ndarray  # (H, W) int32, region ids 0..n-1
Scores: TypeAlias = np.ndarray  # (B, N) float64 probabilities, one column per target


@dataclass(frozen=True, kw_only=True, slots=True)
class ScoreRequest:
    """What to score: the probability of `target_ids[i]` at answer position `target_positions[i]`,
    teacher-forced on the prompt (one image, then `prompt` text) and the answer prefix
    `answer_ids[:target_positions[i]]`.

    Answer positions are 0-based indices into the answer. A target id may differ from the answer
    token at its position: that is how a counter token ("No" where the model said "Yes") is scored.
    """

    prompt: str  # user text after the image
    answer_ids: tuple[int, ...]  # the model's answer tokens (the teacher-forced prefix)
    target_positions: tuple[int, ...]  # (N,) answer positions, each in [0, len(answer_ids)]
    target_ids: tuple[int, ...]  # (N,) token ids whose probabilities are returned
    system: str | None = None  # optional system message

    def __post_init__(self) -> None:
        if len(self.target_positions) != len(self.target_ids):
            raise ValueError(
                f"target_positions has {len(self.target_positions)} entries but target_ids has "
                f"{len(self.target_ids)}: give one position per target id"
            )
        if not self.target_ids:
            raise ValueError("a ScoreRequest needs at least one target")
        bad = [p for p in self.target_positions if not 0 <= p <= len(self.answer_ids)]
        if bad:
            raise ValueError(
                f"target positions {bad} are outside the answer (length {len(self.answer_ids)}); "
                "positions index the answer tokens, 0-based"
            )

    @property
    def n_targets(self) -> int:
        return len(self.target_ids)

    @property
    def last_position(self) -> int:
        """The answer prefix needed: answer_ids[:last_position] (truncate after the last target)."""
        return max(self.target_positions)


@runtime_checkable
class Scorer(Protocol):
    """Batched target-token scoring, EAGLE's inner loop."""

    def score(self, images: RGBBatch, request: ScoreRequest) -> Scores:
        """Probabilities (B, N) of the request's targets for each of the B images."""
        ...


@dataclass(frozen=True, slots=True)
class MaskedImages:
    """B masked variants of one image, described rather than composed: row b of `keep` (B, n) bool
    says which regions of `labels` (H, W) image b shows; every other pixel is black (0).

    `compose()` gives the (B, H, W, 3) uint8 batch. A `MaskedScorer` scores this description directly
    (an in-process backend builds its inputs at the processor's resolution, never composing the
    full-size images); every other scorer is given `compose()`.
    """

    image: RGBImage  # (H, W, 3) uint8
    labels: LabelMap  # (H, W) region ids 0..n-1
    keep: np.ndarray  # (B, n) bool

    def __len__(self) -> int:
        return len(self.keep)

    def compose(self) -> RGBBatch:
        """The masked images (B, H, W, 3) uint8."""
        from eagle.masking import compose

        return compose(self.image, self.labels, self.keep)


@runtime_checkable
class MaskedScorer(Scorer, Protocol):
    """A Scorer that also scores masked variants of one image from their description.

    `score_masked(masked, request)` must equal `score(masked.compose(), request)`; it only saves
    the work of composing (and, in-process, resizing) full-size masked images.
    """

    def score_masked(self, masked: MaskedImages, request: ScoreRequest) -> Scores:
        """Probabilities (B, N) of the request's targets for each of the B masked images."""
        ...


@dataclass(frozen=True, kw_only=True, slots=True)
class GenerationRequest:
    image: RGBImage  # (H, W, 3) uint8
    prompt: str  # user text after the image
    max_new_tokens: int = 32
    system: str | None = None
    request_id: str | None = None  # echoed back, for matching answers to questions


@dataclass(frozen=True, kw_only=True, slots=True)
class Answer:
    text: str  # decoded answer, special tokens removed
    token_ids: tuple[int, ...]  # generated token ids (without the final EOS)
    logprobs: tuple[float, ...]  # log-probability of each generated token
    finish_reason: str  # "stop" (EOS) or "length"
    request_id: str | None = None
    top_logprobs: tuple[dict[int, float], ...] = field(default=())  # optional, per token


class BackendInfo(TypedDict, total=False):
    """What a backend says of itself, recorded with every run (JSON-able)."""

    engine: str  # "hf" | "vllm-server" | "vllm-engine"
    engine_version: str | None  # transformers or vLLM version
    model: str  # checkpoint directory or served model name
    dtype: str | None  # weights/compute dtype, e.g. "float32" (None: not known to the client)
    device: str  # in-process backends
    endpoints: list[str]  # vllm-server


@runtime_checkable
class Backend(Scorer, Protocol):
    """A model behind one interface: generate answers, score targets, tokenise answers the way the
    model's chat template does, describe itself, and release what it holds."""

    model_id: str

    def info(self) -> BackendInfo:
        """Engine, version, model and dtype, for the run record."""
        ...

    def close(self) -> None:
        """Release connections, engines and caches; the backend is not used afterwards."""
        ...

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Answer]:
        ...

    def answer_token_ids(self, prompt: str, answer: str, system: str | None = None) -> tuple[int, ...]:
        """Token ids of `answer` as it follows the prompt in the chat template."""
        ...

    def token_id(self, token: str) -> int:
        """Id of a single token given as text as it would appear in an answer (e.g. "No")."""
        ...

    def decode(self, ids: Sequence[int]) -> str:
        ...
