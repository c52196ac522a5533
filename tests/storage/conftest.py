"""Fixtures for tests of storage/ and the query/store commands."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from storage_fixtures import FIXTURES, as_v1, build


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


@pytest.fixture(params=["current", "v2", "v1"])
def query_store(request, _synthetic_template: Path, tmp_path: Path) -> Path:
    """The hand-computed synthetic store as this version writes it, and as schema versions 2 and 1
    wrote it (tests/storage/fixtures): every example query must give the same rows on all three."""
    root = tmp_path / "store"
    if request.param == "current":
        shutil.copytree(_synthetic_template, root)
    else:
        shutil.copytree(FIXTURES / "v2-synthetic", root)
        if request.param == "v1":
            as_v1(root)
    return root
