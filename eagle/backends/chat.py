"""Prompts as chat messages, and answer tokens as the model's chat template renders them: one
definition shared by every backend.

A backend supplies one method, `_render_chat(prompt, system, answer)`: the token ids of the chat
(a user turn with one image and `prompt`, after an optional system turn) up to the generation
prompt when `answer` is None, else with `answer` as the start of the assistant turn
(`continue_final_message`). Everything else here is derived from it, so the three backends split
answers into tokens the same way and fail the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eagle.backends.errors import TokenBoundaryError

# The user prompt under which a single word is tokenised as it appears at the start of an answer.
TOKEN_PROMPT = ""
IMAGE_PART: dict[str, Any] = {"type": "image"}  # an image in a transformers chat template


def chat_messages(
    prompt: str,
    *,
    system: str | None = None,
    answer: str | None = None,
    image: dict[str, Any] | None = IMAGE_PART,
) -> list[dict[str, Any]]:
    """OpenAI-style messages: [system], user (image part, then `prompt`), [assistant `answer`].

    `image` is the content part standing for the image ({"type": "image"} for a transformers chat
    template, an "image_url" part for a server), or None for a text-only rendering.
    """
    messages: list[dict[str, Any]] = []
    if system:
        messages.append({"role": "system", "content": [{"type": "text", "text": system}]})
    content = ([image] if image is not None else []) + [{"type": "text", "text": prompt}]
    messages.append({"role": "user", "content": content})
    if answer is not None:
        messages.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    return messages


class ChatTokens:
    """Answer tokenisation through the chat template, for a backend that implements `_render_chat`."""

    model_id: str

    def _render_chat(self, prompt: str, system: str | None, answer: str | None) -> Sequence[int]:
        """Token ids of the chat up to the generation prompt (answer None) or through `answer`."""
        raise NotImplementedError

    def answer_token_ids(self, prompt: str, answer: str, system: str | None = None) -> tuple[int, ...]:
        """Token ids of `answer` as it follows the generation prompt in the chat template, so the
        tokenisation at the prompt/answer boundary is the model's own."""
        head = tuple(self._render_chat(prompt, system, None))
        full = tuple(self._render_chat(prompt, system, answer))
        if full[: len(head)] != head:
            before, after = list(head[-3:]), list(full[len(head) - 3 : len(head)])
            raise TokenBoundaryError(
                f"model {self.model_id!r}: the chat template renders the answer {answer!r} so that the "
                f"generation prompt's last tokens change ({before} -> {after}); its tokens cannot be "
                "separated from the prompt. Pass the answer's token ids from generate() instead"
            )
        return full[len(head) :]

    def token_id(self, token: str) -> int:
        """Id of a word given as text as it appears at the start of an answer (e.g. "No")."""
        ids = self.answer_token_ids(TOKEN_PROMPT, token)
        if len(ids) != 1:
            raise ValueError(
                f"{token!r} is {len(ids)} tokens {list(ids)} for model {self.model_id!r}, not one; "
                "give a single-token word as it appears in answers (e.g. 'No')"
            )
        return ids[0]
