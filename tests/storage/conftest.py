"""Fixtures for tests of storage/ and the query/store commands."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from storage_fixtures import build


@pytest.fixture(scope="session")
def _synthetic_template(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("template") / "store"
    build(root)
    return root


@pytest.fixture
def synthetic_store(_synthetic_template: Path, tmp_path: Path) -> Path:
    """A private copy of the synthetic store (tests may compact or write to it)."""
    root = tmp_path / "store"
    shutil.copytree(_synthetic_template, root)
    return root
