"""The test tree has no packages (pytest's default rootdir import mode), so two test files with one
basename in different folders stop collection of the whole suite ("import file mismatch")."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def test_no_two_test_modules_share_a_basename() -> None:
    names = Counter(
        p.name for p in TESTS.rglob("*.py") if p.name != "conftest.py" and "__pycache__" not in p.parts
    )
    assert [name for name, n in names.items() if n > 1] == []
