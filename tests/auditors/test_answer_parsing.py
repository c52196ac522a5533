"""Answer parsing, tested as a table of real-looking model outputs with the intended verdict."""

from __future__ import annotations

import pytest

from auditors.parsing import parse_decision, parse_yes_no

CASES: list[tuple[str, str]] = [
    # plain answers
    ("Yes.", "yes"),
    ("No.", "no"),
    ("yes", "yes"),
    (" No", "no"),
    ("YES", "yes"),
    ("Yes, there is a dog in the image.", "yes"),
    ("No, there is not.", "no"),
    ("No, there is no dog in the image.", "no"),
    # markdown and punctuation
    ("**No**", "no"),
    ("**Yes**, a dog is lying on the sofa.", "yes"),
    ("*yes*", "yes"),
    ("`No`", "no"),
    ("## Answer\nYes", "yes"),
    ("> No.", "no"),
    ('"Yes"', "yes"),
    ("(No)", "no"),
    ("Yes!", "yes"),
    ("No...", "no"),
    # labels and reasoning blocks
    ("Answer: Yes", "yes"),
    ("ASSISTANT: No", "no"),
    ("Final answer: no.", "no"),
    ("<think>The dog is barely visible, yes or no?</think>No.", "no"),
    # full sentences without a leading yes/no
    ("There is a dog.", "yes"),
    ("There are two dogs on the grass.", "yes"),
    ("There is no dog in the image.", "no"),
    ("There isn't a dog in this picture.", "no"),
    ("There are no dogs visible.", "no"),
    ("I don't see a dog in the image.", "no"),
    ("I can see a dog next to the bench.", "yes"),
    ("The image does not contain a dog.", "no"),
    ("A dog is visible in the lower left corner.", "yes"),
    ("The dog is not visible.", "no"),
    ("It is not.", "no"),
    ("Not that I can see.", "no"),
    ("I think so.", "yes"),
    ("I don't think so.", "no"),
    ("Certainly not.", "no"),
    ("Absolutely!", "yes"),
    ("Definitely yes.", "yes"),
    ("Correct, there is one.", "yes"),
    ("None", "no"),
    ("Nope, nothing like that.", "no"),
    ("The answer is yes.", "yes"),
    ("The answer is no.", "no"),
    ("It\u2019s not there.", "no"),
    ("There\u2019s a cat on the table.", "yes"),
    # multi-line
    ("Yes\n\nThe image shows a dog sitting on a couch.", "yes"),
    ("\n\nNo\nThere is only a cat.", "no"),
    ("Let me look at the image.\nYes, there is.", "yes"),
    # abstentions and garbage -> unparsed
    ("I cannot tell.", "unparsed"),
    ("I can't tell from this image.", "unparsed"),
    ("I'm not sure.", "unparsed"),
    ("It is unclear whether there is a dog.", "unparsed"),
    ("It is impossible to say.", "unparsed"),
    ("", "unparsed"),
    ("   ", "unparsed"),
    ("...", "unparsed"),
    ("The image shows a kitchen.", "unparsed"),
    ("circle star moon", "unparsed"),
    ("Maybe.", "unparsed"),
    ("Yesterday I saw a dog.", "unparsed"),
    ("Nobody knows.", "unparsed"),
    # assurances are not answers: "no doubt" is no "no"; the rest decides
    ("No doubt, there is a dog.", "yes"),
    ("No doubt.", "yes"),
    ("Without a doubt, yes.", "yes"),
    ("No doubt about it, there is no dog.", "no"),
    ("Undoubtedly there is a cat.", "yes"),
    ("No doubt I cannot tell.", "unparsed"),
]


def test_table_is_large_enough() -> None:
    assert len(CASES) >= 40
    assert {v for _, v in CASES} == {"yes", "no", "unparsed"}


@pytest.mark.parametrize(("answer", "expected"), CASES)
def test_parse_yes_no(answer: str, expected: str) -> None:
    assert parse_yes_no(answer) == expected


@pytest.mark.parametrize(("answer", "expected"), [c for c in CASES if c[1] != "unparsed"])
def test_decision_span_points_into_the_original_text(answer: str, expected: str) -> None:
    decision = parse_decision(answer)
    assert decision.start is not None and decision.end is not None
    assert 0 <= decision.start < decision.end <= len(answer)
    assert answer[decision.start : decision.end].strip()


def test_leading_word_span_is_the_word() -> None:
    d = parse_decision("**No**, there is no dog.")
    assert (d.verdict, d.rule, "**No**, there is no dog."[d.start : d.end]) == ("no", "leading", "No")
    d = parse_decision(" Yes")
    assert (d.start, d.end) == (1, 4)


def test_unparsed_has_no_span() -> None:
    d = parse_decision("I cannot tell")
    assert d.verdict == "unparsed" and d.start is None and d.rule == "abstain"
