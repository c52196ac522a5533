"""Token-level hallucination marking: the EAGLE targets in the model's own tokens.

Yes/no questions: for a false positive ("Yes" to an absent object) or a false negative, the
target is the answer token that carries the decision and the *counter* token, the same word with
the opposite meaning in the same form (" Yes" -> " No", "yes" -> "no", "YES" -> "NO"). EAGLE
explains the counter token to find the regions that support the correct answer; the regions
ranked last are the ones driving the hallucination.

Captions: for every mention whose class is absent from the image, the half-open span
[token_start, token_end) of answer tokens that covers it: a multi-token word ("stars" = " star" +
"s") gives a span of several tokens.

Tokens are mapped to characters with the tokenizer's offset mapping when re-tokenising the
answer text reproduces the model's token ids, and otherwise by decoding growing prefixes of the
ids (which works for any Backend with a `decode`): token i covers the characters added when it
is appended. A byte-level BPE token that ends inside a multi-byte character adds nothing until
the character is complete, so that character belongs to the token that completes it.

Example::

    >>> marker = TokenMarker.from_tokenizer(tokenizer)  # doctest: +SKIP
    >>> marker.mark_yes_no(answer_ids=ids, label="no")  # doctest: +SKIP
    YesNoTarget(kind='false_positive', position=0, token_id=292, token_text=' Yes', counter_id=291, ...)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from auditors.mentions import Mention, Vocabulary
from auditors.parsing import parse_decision

Offsets = tuple[tuple[int, int], ...]  # (n_tokens,) character span [start, end) of each token


class MarkingError(ValueError):
    """A hallucination that cannot be mapped onto the model's tokens; the message says why."""


@dataclass(frozen=True, kw_only=True, slots=True)
class YesNoTarget:
    """The EAGLE target of one wrong yes/no answer."""

    kind: Literal["false_positive", "false_negative"]
    label: Literal["yes", "no"]  # ground truth
    verdict: Literal["yes", "no"]  # what the answer said
    position: int  # answer-token index of the token that carries the decision
    token_id: int  # the model's token at `position`
    token_text: str  # its decoded text, e.g. " Yes"
    counter_id: int | None  # the opposite answer in the same form, e.g. " No"; None for phrase decisions
    counter_text: str | None
    decision: tuple[int, int]  # character span of the deciding word or phrase in the answer text
    rule: str  # which parsing rule decided (auditors.parsing.Decision.rule)


@dataclass(frozen=True, kw_only=True, slots=True)
class CaptionTarget:
    """One hallucinated object mention and the answer tokens that spell it."""

    cls: str  # the class named, absent from the image
    text: str  # the mention as written
    char_start: int
    char_end: int
    token_start: int  # first answer token of the mention
    token_end: int  # one past the last (half-open)
    token_ids: tuple[int, ...]  # answer_ids[token_start:token_end]

    @property
    def positions(self) -> tuple[int, ...]:
        return tuple(range(self.token_start, self.token_end))


def decode_offsets(ids: Sequence[int], decode: Callable[[Sequence[int]], str]) -> tuple[str, Offsets]:
    """Text of `ids` and the character span of each token, by decoding growing prefixes."""
    text = decode(list(ids))
    spans: list[tuple[int, int]] = []
    done = 0
    for i in range(len(ids)):
        prefix = decode(list(ids[: i + 1]))
        # characters of `text` that this prefix already fixes (a trailing partial character
        # decodes to U+FFFD and does not match yet)
        end = _common_prefix(prefix, text)
        end = max(end, done)
        spans.append((done, end))
        done = end
    if spans:
        spans[-1] = (spans[-1][0], len(text))
    return text, tuple(spans)


def _common_prefix(a: str, b: str) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def token_span(offsets: Offsets, start: int, end: int) -> tuple[int, int]:
    """Smallest half-open token range whose characters cover [start, end)."""
    if not start < end:
        raise MarkingError(f"empty character span [{start}, {end})")
    hits = [i for i, (s, e) in enumerate(offsets) if s < end and e > start]
    if not hits:
        raise MarkingError(
            f"characters [{start}, {end}) are covered by no token (offsets end at {_last(offsets)})"
        )
    return hits[0], hits[-1] + 1


def _last(offsets: Offsets) -> int:
    return offsets[-1][1] if offsets else 0


def counter_word(word: str) -> str:
    """The opposite of a yes/no word in the same letter case: Yes -> No, YES -> NO, no -> yes."""
    low = word.lower()
    if low not in ("yes", "no"):
        raise MarkingError(f"{word!r} is not a yes/no word; only yes/no decisions have a counter token")
    other = "no" if low == "yes" else "yes"
    if word.isupper() and len(word) > 1:
        return other.upper()
    if word[:1].isupper():
        return other.capitalize()
    return other


@dataclass(frozen=True)
class TokenMarker:
    """Marks hallucinations in answers given as token ids, with one model's tokenisation.

    Build it from a Hugging Face tokenizer (`from_tokenizer`) or from a Backend
    (`from_backend`: its `decode` and `answer_token_ids`); both give the same targets.
    """

    decode: Callable[[Sequence[int]], str]  # ids -> text, special tokens skipped
    encode: Callable[[str], Sequence[int]]  # answer text -> ids, no special tokens
    offsets_of: Callable[[str, Sequence[int]], Offsets | None] | None = None  # tokenizer offsets, if usable

    @classmethod
    def from_tokenizer(cls, tokenizer: Any) -> TokenMarker:
        """From a transformers tokenizer; a fast one's offset mapping is used where it matches."""

        def decode(ids: Sequence[int]) -> str:
            return tokenizer.decode(list(ids), skip_special_tokens=True, clean_up_tokenization_spaces=False)

        def encode(text: str) -> list[int]:
            return list(tokenizer.encode(text, add_special_tokens=False))

        def offsets_of(text: str, ids: Sequence[int]) -> Offsets | None:
            if not getattr(tokenizer, "is_fast", False):
                return None
            enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
            if list(enc["input_ids"]) != list(ids):
                return None  # the model's tokens differ from a re-tokenisation: decode instead
            return tuple((int(s), int(e)) for s, e in enc["offset_mapping"])

        return cls(decode=decode, encode=encode, offsets_of=offsets_of)

    @classmethod
    def from_backend(cls, backend: Any, prompt: str = "") -> TokenMarker:
        """From an `eagle.types.Backend`: its decode, and its answer tokenisation after `prompt`."""
        return cls(decode=backend.decode, encode=lambda text: backend.answer_token_ids(prompt, text))

    def tokenize(self, text: str) -> tuple[tuple[int, ...], str, Offsets]:
        """Token ids, decoded text and offsets of an answer given as text (teacher forcing)."""
        ids = tuple(self.encode(text))
        decoded, offsets = self.offsets(ids)
        return ids, decoded, offsets

    def offsets(self, ids: Sequence[int]) -> tuple[str, Offsets]:
        """The answer text of `ids` and each token's character span in it."""
        text = self.decode(ids)
        if self.offsets_of is not None:
            found = self.offsets_of(text, ids)
            if found is not None:
                return text, found
        return decode_offsets(ids, self.decode)

    def mark_yes_no(self, *, answer_ids: Sequence[int], label: str) -> YesNoTarget | None:
        """The target of a wrong yes/no answer; None when the answer is right or unparsed.

        The answer text is `decode(answer_ids)`; the decision is parsed with
        `auditors.parsing.parse_decision`. A yes/no word yields a counter token: the same token
        text with the word replaced by its opposite, encoded (its first token when the tokenizer
        splits it). A decision read from a phrase ("There is no dog") points at the phrase's first
        token and has no counter token.
        """
        if label not in ("yes", "no"):
            raise MarkingError(f"label must be 'yes' or 'no', got {label!r}")
        ids = tuple(int(i) for i in answer_ids)
        text, offsets = self.offsets(ids)
        decision = parse_decision(text)
        if decision.verdict == "unparsed" or decision.verdict == label:
            return None
        if decision.start is None or decision.end is None:
            raise MarkingError(f"parser returned {decision.verdict!r} without a span for {text!r}")
        position, _ = token_span(offsets, decision.start, decision.end)
        token_text = self.decode([ids[position]])
        counter_id = counter_text = None
        word = text[decision.start : decision.end]
        if decision.rule in ("leading", "first_word") and word.lower() in ("yes", "no"):
            prefix = text[offsets[position][0] : decision.start]  # e.g. the space of " Yes"
            counter_text = prefix + counter_word(word)
            counter_ids = list(self.encode(counter_text))
            if counter_ids and not self.decode([counter_ids[0]]).strip():
                # A chat template may write its own separator before the answer ("ASSISTANT: " +
                # content), so " No" encodes as [" ", " No"]: encode the word without our space.
                alt = list(self.encode(counter_text.lstrip()))
                if alt and self.decode([alt[0]]).strip():
                    counter_ids = alt
            if not counter_ids:
                raise MarkingError(f"the tokenizer encodes the counter answer {counter_text!r} as no tokens")
            counter_id = int(counter_ids[0])
            counter_text = self.decode([counter_id])
            if counter_id == ids[position]:
                raise MarkingError(
                    f"the counter token of {token_text!r} encodes to the same token {counter_id}; "
                    "this tokenizer cannot express the opposite answer as one token at that position"
                )
        return YesNoTarget(
            kind="false_positive" if decision.verdict == "yes" else "false_negative",
            label=label,  # type: ignore[arg-type]
            verdict=decision.verdict,
            position=position,
            token_id=ids[position],
            token_text=token_text,
            counter_id=counter_id,
            counter_text=counter_text,
            decision=(decision.start, decision.end),
            rule=decision.rule,
        )

    def mark_caption(
        self, *, answer_ids: Sequence[int], present: Iterable[str], vocabulary: Vocabulary
    ) -> list[CaptionTarget]:
        """Targets for every mention in the caption whose class is not in `present`."""
        present = set(present)
        ids = tuple(int(i) for i in answer_ids)
        text, offsets = self.offsets(ids)
        return [
            self._caption_target(m, ids, offsets) for m in vocabulary.extract(text) if m.cls not in present
        ]

    @staticmethod
    def _caption_target(mention: Mention, ids: tuple[int, ...], offsets: Offsets) -> CaptionTarget:
        start, end = token_span(offsets, mention.start, mention.end)
        return CaptionTarget(
            cls=mention.cls,
            text=mention.text,
            char_start=mention.start,
            char_end=mention.end,
            token_start=start,
            token_end=end,
            token_ids=ids[start:end],
        )
