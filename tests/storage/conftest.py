"""Fixtures for tests of storage/ and the query/store commands."""

from __future__ import annotations

from pathlib import Path

import pytest
from storage_fixtures import build


@pytest.fixture
def synthetic_store(tmp_path: Path) -> Path:
    root = tmp_path / "store"
    build(root)
    return root
