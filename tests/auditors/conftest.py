"""Shared fixtures for the auditors tests: the real annotation files beside the clone."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
REAL_ANNOTATIONS = (REPO_ROOT / ".." / "shared" / "data" / "repope").resolve()


@pytest.fixture(scope="session")
def real_annotations_dir() -> Path:
    if not (REAL_ANNOTATIONS / "coco_pope_random.json").exists():
        pytest.skip(f"real POPE/RePOPE files not found at {REAL_ANNOTATIONS} (expected beside the clone)")
    return REAL_ANNOTATIONS


@pytest.fixture(scope="session")
def real_annotations(real_annotations_dir: Path):
    from auditors.annotations import load_annotations

    return load_annotations(real_annotations_dir)
