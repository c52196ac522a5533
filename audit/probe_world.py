"""The one place an audit touches the probe harness: the built-in probe world as a data set and the
shipped probe checkpoint as the default model. Imported only when a run asks for either, so an
audit of a real model on real data never imports `probe` (checked by the import contract and by
tests/audit/test_engine.py)."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

log = logging.getLogger(__name__)


def probe_checkpoint() -> Path:
    """Directory of the shipped probe model (a standard LLaVA checkpoint)."""
    from probe.model import CHECKPOINT_DIR

    return CHECKPOINT_DIR


def ensure_world(parent: Path, *, seed: int, n_images: int) -> Path:
    """The probe world of (seed, n_images) under `parent`, written on first use. Another audit may
    write the same world at the same time: each writes a private copy and the first rename wins
    (the bytes are identical)."""
    root = parent / f"probe-seed{seed}-n{n_images}"
    if (root / "SHA256SUMS").exists():
        return root
    from probe.world import write_world

    log.info("writing the probe world (%d scenes, seed %d) to %s", n_images, seed, root)
    tmp = root.with_name(f".{root.name}.tmp-{time.time_ns()}")
    try:
        write_world(tmp, seed, n_images, "heldout")
    except OSError as exc:
        from storage.writer import DiskFullError, is_disk_full

        shutil.rmtree(tmp, ignore_errors=True)
        if is_disk_full(exc):
            raise DiskFullError(root) from exc
        raise
    try:
        tmp.rename(root)
    except OSError:  # written by another audit meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
    return root
