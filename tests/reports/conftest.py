"""Fixtures for the report tests: a probe-like audit store (several nightly runs, explanations and
maps for the last one, one hostile caption) written through the real storage API."""

from __future__ import annotations

from pathlib import Path

import pytest

NIGHTS = 4


@pytest.fixture(scope="session")
def audit(tmp_path_factory):
    """(store path, world path, run ids oldest first) of a synthetic 4-night probe audit."""
    from tests.support.synthetic_store import write_synthetic_audit

    root = tmp_path_factory.mktemp("audit")
    runs = write_synthetic_audit(root / "store", root / "world", nights=NIGHTS, n_images=30, hostile=True)
    return root / "store", root / "world", runs


@pytest.fixture(scope="session")
def report_path(audit, tmp_path_factory) -> Path:
    from reports import build_report

    store, _, _ = audit
    return build_report(store, out=tmp_path_factory.mktemp("report") / "report.html")


@pytest.fixture()
def con(audit):
    from storage.store import Store

    connection = Store(audit[0], create=False).connect()
    yield connection
    connection.close()
