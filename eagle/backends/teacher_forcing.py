"""How a `ScoreRequest` becomes teacher-forced prompts whose *prompt logprobs* hold every target.

Serving engines return, for each prompt token, the log-probability of that token given the tokens
before it (`prompt_logprobs`). So a target (position p, token t) is read at the prompt position
where the answer part has t at offset p:

* targets that are the model's own answer token (t == answer_ids[p]) all come from one prompt:
  the answer prefix `answer_ids[:m]`, m = 1 + the last such position;
* a counter token (t != answer_ids[p], or p == len(answer_ids)) is scored by substituting it:
  the prompt ends in `answer_ids[:p] + (t,)` -- one extra prompt per distinct (p, t).

Why substitution and not `logprob_token_ids` at the next position: it needs only `prompt_logprobs`,
which every vLLM version and runner supports, and it never puts `logprob_token_ids` requests into a
shared server's batch (the V1 runner corrupts other requests' top-k logprobs in such mixed batches,
vllm-notes pitfall 6). The extra prompt costs one more prefill per counter token per image.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from eagle.backends.errors import TokenBoundaryError
from eagle.types import ScoreRequest

# vLLM clamps -inf prompt logprobs to this value in JSON responses.
CLAMPED_NEG_INF = -9999.0


@dataclass(frozen=True, kw_only=True, slots=True)
class Variant:
    """One teacher-forced prompt: the answer part placed after the generation prompt, and which
    request targets (column index, offset into `part`) are read from it."""

    part: tuple[int, ...]  # answer token ids that end the prompt
    reads: tuple[tuple[int, int], ...]  # (target column, offset in part)


def plan_variants(request: ScoreRequest) -> list[Variant]:
    """The prompts needed to score every target of `request`, answer-token targets sharing one."""
    answer = request.answer_ids
    own = [
        k for k, (p, t) in enumerate(zip(request.target_positions, request.target_ids, strict=True))
        if p < len(answer) and answer[p] == t
    ]  # fmt: skip
    variants: list[Variant] = []
    if own:
        m = 1 + max(request.target_positions[k] for k in own)
        variants.append(Variant(part=answer[:m], reads=tuple((k, request.target_positions[k]) for k in own)))
    counters: dict[tuple[int, ...], list[tuple[int, int]]] = {}
    for k, (p, t) in enumerate(zip(request.target_positions, request.target_ids, strict=True)):
        if k in own:
            continue
        counters.setdefault(answer[:p] + (t,), []).append((k, p))
    variants.extend(Variant(part=part, reads=tuple(reads)) for part, reads in counters.items())
    return variants


def read_targets(
    variant: Variant,
    prompt_token_ids: Sequence[int],
    prompt_logprobs: Sequence[Mapping[int, float] | None],
    *,
    where: str,
) -> list[tuple[int, float]]:
    """(target column, probability) for each read of `variant` from one scored prompt.

    `prompt_logprobs[i]` maps token id -> logprob at prompt position i (None at position 0). Raises
    TokenBoundaryError when the prompt does not end with the variant's answer part, so a
    probability is never read for a token other than the requested one. `where` names the endpoint
    or engine for the message.
    """
    n, a = len(prompt_token_ids), len(variant.part)
    tail = tuple(prompt_token_ids[n - a :])
    if n <= a or tail != variant.part:
        raise TokenBoundaryError(
            f"{where}: the prompt does not end with the teacher-forced answer tokens {list(variant.part)}; "
            f"it ends with {list(prompt_token_ids[max(0, n - a - 2) :])}. The chat template tokenises the "
            "answer differently at the prompt/answer boundary; use a backend that takes token-id prompts "
            "(vllm-engine, hf) or a model whose template keeps the answer tokens intact",
            endpoint=where,
        )
    if len(prompt_logprobs) != n:
        raise TokenBoundaryError(
            f"{where}: got {len(prompt_logprobs)} prompt logprob entries for {n} prompt tokens",
            endpoint=where,
        )
    out = []
    for col, offset in variant.reads:
        pos = n - a + offset
        entry = prompt_logprobs[pos]
        token = variant.part[offset]
        if entry is None or token not in entry:
            raise TokenBoundaryError(
                f"{where}: no logprob for token {token} at prompt position {pos}", endpoint=where
            )
        lp = float(entry[token])
        out.append((col, 0.0 if lp <= CLAMPED_NEG_INF else math.exp(lp)))
    return out
