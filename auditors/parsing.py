"""Yes/no answer parsing with an explicit "unparsed" outcome.

Policy, in order (the first rule that fires decides):

1. Normalise: Unicode NFKC, lower case, curly apostrophes made straight, markdown marks
   (``* _ ` # >``), punctuation and line breaks turned into spaces. Reasoning blocks
   (``<think>...</think>``) and a leading role or "answer:" label are skipped.
2. A leading decision word: "yes", "yeah", "yep", "yup", "sure", "certainly", "definitely",
   "absolutely", "correct", "true", "indeed" -> yes ("certainly not" and the like -> no); "no",
   "nope", "none", "nothing", "false", "incorrect", "negative", "never", "nah" -> no
   ("No, there is not." -> no; "None." -> no). A leading assurance ("No doubt,", "Without a
   doubt,") is skipped and the rest decides ("No doubt, there is a dog." -> yes); alone it is a yes.
3. Abstentions in the first sentence ("I cannot tell", "not sure", "unclear", "impossible to
   say", ...) -> unparsed: a model that declines to decide is reported as such, not guessed.
4. A negation in the first sentence (the earlier of a negation and an affirmation wins):
   "there is no", "there are no", "there isn't", "there is not", "I don't see", "does not
   contain", "not visible", "no <word>", ... -> no.
5. An affirmation in the first sentence: "there is a", "there are", "I can see", "is visible",
   "is present", "the image contains" (not "shows": a description is no answer), "I think so"
   -> yes ("There is a dog." -> yes).
6. The first "yes" or "no" word anywhere in the answer.
7. Otherwise unparsed.

`parse_decision` also returns where in the *original* text the decision was read (character
offsets), which token marking uses to find the model's answer token.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

Verdict = Literal["yes", "no", "unparsed"]

_YES_WORDS = (
    "yes",
    "yeah",
    "yep",
    "yup",
    "sure",
    "certainly",
    "definitely",
    "absolutely",
    "correct",
    "true",
    "indeed",
)
_NO_WORDS = ("no", "nope", "none", "nothing", "false", "incorrect", "negative", "never", "nah")
_ADVERBS = ("sure", "certainly", "definitely", "absolutely", "indeed")  # "certainly not" is a no

_ABSTAIN = re.compile(
    r"\b(?:"
    r"(?:i )?(?:can ?not|can't|cannot|couldn't|could not|am unable to|'m unable to|am not able to|unable to) "
    r"(?:tell|say|determine|be sure|confirm|answer|decide|know|verify)"
    r"|not (?:sure|certain)|unsure"
    r"|unclear|uncertain|ambiguous|hard to (?:tell|say)|difficult to (?:tell|say|determine)"
    r"|impossible to (?:tell|say|determine)|(?:i )?don't know|(?:i )?do not know|no way to (?:tell|know)"
    r"|not possible to (?:tell|say|determine)|not clear|can't be sure|cannot be sure"
    r")\b"
)
_NEGATION = re.compile(
    r"\b(?:"
    r"there(?: is| are| was| were|'s|'re) (?:no|not|none)\b"
    r"|there isn't|there aren't|there wasn't|there weren't"
    r"|(?:i )?(?:do not|don't|cannot|can not|can't|couldn't|could not) see"
    r"|(?:does|do|did) not (?:contain|show|include|have|appear|feature|depict)"
    r"|(?:doesn't|don't|didn't) (?:contain|show|include|have|appear|feature|depict)"
    r"|(?: is| are|'s) not (?:visible|present|shown|there|in the image|included|depicted)"
    r"|(?:isn't|aren't) (?:visible|present|shown|there|in the image|included|depicted)"
    r"|(?:is|are) absent|not (?:visible|present)|no sign of|(?:i )?don't think so|(?:i )?do not think so"
    r"|it(?: is|'s) not|it isn't|they(?: are|'re) not|they aren't|\bnot\b|\w+n't\b|\bno\b"
    r")"
)
_AFFIRMATION = re.compile(
    r"\b(?:"
    r"there(?: is| are| was| were|'s|'re) (?:a|an|one|two|three|several|many|some|multiple|at least)\b"
    r"|there(?: is| are|'s|'re) \w+"
    r"|(?:i )?(?:can )?see (?:a|an|one|two|some|several|the)\b"
    r"|(?:is|are) (?:visible|present|shown|depicted|in the image)"
    r"|(?:the )?image (?:contains|includes|features) (?:a|an|one|two|some|several|the)\b"
    r"|(?:i )?think so|\b(?:it|they) (?:is|are|does|do)(?= *$)"
    r")"
)
# Leading phrases that assure rather than answer ("no doubt" is not a "no").
_ASSURANCE = re.compile(r"(?:no doubt(?: about it)?|without (?:a )?doubt|undoubtedly|no question)\b")
_FIRST_YES_NO = re.compile(r"\b(?:yes|no)\b")
_LEAD_LABEL = re.compile(r"^\s*(?:(?:assistant|answer|final answer|response|a)\s*:\s*)+")
_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_MARKDOWN = set("*_`#>~|")
_KEEP = set("'")


@dataclass(frozen=True, kw_only=True, slots=True)
class Decision:
    """The parsed verdict of an answer and where it was read.

    `start`/`end` are character offsets into the original answer text of the word or phrase that
    decided (both None when unparsed); `rule` names the policy step that fired.
    """

    verdict: Verdict
    rule: Literal["leading", "abstain", "negation", "affirmation", "first_word", "empty", "none"]
    start: int | None = None
    end: int | None = None


def _normalise(text: str) -> tuple[str, list[int]]:
    """Lower-cased text with markdown and punctuation as spaces, plus, per output character, the
    index of the original character it came from (so decisions map back to the raw answer)."""
    out: list[str] = []
    index: list[int] = []
    for i, ch in enumerate(text):
        for c in unicodedata.normalize("NFKC", ch).lower():
            if c in "\u2018\u2019\u02bc":
                c = "'"
            if c in _MARKDOWN or (not c.isalnum() and not c.isspace() and c not in _KEEP):
                c = " "
            elif c.isspace():
                c = " "
            out.append(c)
            index.append(i)
    return "".join(out), index


def _blank(norm: str, start: int, end: int) -> str:
    return norm[:start] + " " * (end - start) + norm[end:]


def parse_decision(text: str) -> Decision:
    """Parse a raw model answer into a yes/no/unparsed decision with its character span."""
    if not text or not text.strip():
        return Decision(verdict="unparsed", rule="empty")
    norm, index = _normalise(text)
    # Skip reasoning blocks and role labels by blanking them (keeps offsets aligned).
    for m in _THINK.finditer(text.lower()):
        lo = next((k for k, i in enumerate(index) if i >= m.start()), len(norm))
        hi = next((k for k, i in enumerate(index) if i >= m.end()), len(norm))
        norm = _blank(norm, lo, hi)
    lead = _LEAD_LABEL.match(_label_view(text, index, norm))
    if lead:
        norm = _blank(norm, 0, lead.end())

    def span(start: int, end: int) -> tuple[int, int]:
        return index[start], index[end - 1] + 1

    first = re.search(r"[a-z0-9']+", norm)
    if first is None:
        return Decision(verdict="unparsed", rule="empty")
    sure = _ASSURANCE.match(norm, first.start())
    if sure is not None:
        # "No doubt, there is a dog." is no "no": the assurance is skipped and the rest decides;
        # an assurance alone ("No doubt.", "Without a doubt!") is a yes.
        s, e = span(sure.start(), sure.end())
        rest = parse_decision(text[:s] + " " * (e - s) + text[e:])
        if rest.verdict != "unparsed" or rest.rule == "abstain":
            return rest
        return Decision(verdict="yes", rule="leading", start=s, end=e)
    word = first.group(0)
    if word in _ADVERBS:
        following = re.match(r" +not\b", norm[first.end() :])
        if following:
            s, e = span(first.start(), first.end() + following.end())
            return Decision(verdict="no", rule="leading", start=s, end=e)
    if word in _YES_WORDS or word in _NO_WORDS:
        verdict: Verdict = "yes" if word in _YES_WORDS else "no"
        s, e = span(first.start(), first.end())
        return Decision(verdict=verdict, rule="leading", start=s, end=e)

    sentence = _first_sentence(text, index, norm)
    if _ABSTAIN.search(sentence):
        return Decision(verdict="unparsed", rule="abstain")
    neg = _NEGATION.search(sentence)
    aff = _AFFIRMATION.search(sentence)
    if neg is not None and (aff is None or neg.start() <= aff.start() or _covers(neg, aff)):
        s, e = span(neg.start(), neg.end())
        return Decision(verdict="no", rule="negation", start=s, end=e)
    if aff is not None:
        s, e = span(aff.start(), aff.end())
        return Decision(verdict="yes", rule="affirmation", start=s, end=e)
    m = _FIRST_YES_NO.search(norm)
    if m is not None:
        s, e = span(m.start(), m.end())
        return Decision(verdict="yes" if m.group(0) == "yes" else "no", rule="first_word", start=s, end=e)
    return Decision(verdict="unparsed", rule="none")


def _covers(neg: re.Match[str], aff: re.Match[str]) -> bool:
    # "there is no" also matches the affirmation "there is \w+"; the negation wins when it overlaps.
    return neg.start() <= aff.end() and aff.start() <= neg.end()


def _label_view(text: str, index: list[int], norm: str) -> str:
    """The normalised text with colons restored, so that 'Answer: yes' labels can be matched."""
    chars = list(norm)
    for k, i in enumerate(index):
        if text[i] == ":":
            chars[k] = ":"
    return "".join(chars)


def _first_sentence(text: str, index: list[int], norm: str) -> str:
    """The normalised text up to the end of the first sentence (the rest blanked)."""
    for k, i in enumerate(index):
        if norm[k] == " " and text[i] in ".!?\n" and norm[:k].strip():
            return norm[:k] + " " * (len(norm) - k)
    return norm


def parse_yes_no(text: str) -> Verdict:
    """'yes', 'no' or 'unparsed' for a raw model answer (see the module docstring for the policy).

    >>> parse_yes_no("**No**, there is no dog.")
    'no'
    >>> parse_yes_no("I cannot tell from this image.")
    'unparsed'
    """
    return parse_decision(text).verdict
