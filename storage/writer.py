"""Atomic file writes: readers see a complete file or nothing.

Each write goes to a hidden temporary file in the destination directory, is flushed and
fsynced, then linked to its final name (which fails instead of overwriting an existing file) and
the directory is fsynced, so after a crash the final name either does not exist or holds the
whole file. A crash leaves at most a hidden `.tmp` file, which no view reads and
`remove_stale_tmp` deletes later.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import re
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from storage.layout import TMP_SUFFIX, tmp_path

COMPRESSION = "zstd"
# errno values, and message texts (pyarrow, sqlite), of a full disk or exhausted quota
_DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
_DISK_FULL_TEXT = re.compile(
    r"no space left on (?:device|the disk)|disk quota exceeded|database or disk is full", re.I
)


class DiskFullError(OSError):
    """A write failed because the disk (or quota) holding `filename` is full; the message says how
    much is free there."""

    def __init__(self, path: Path | str) -> None:
        super().__init__(errno.ENOSPC, disk_full_message(path), str(path))

    def __str__(self) -> str:
        return str(self.strerror)


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether `exc`, or an error in its cause chain, says the disk or the quota is full."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in _DISK_FULL_ERRNOS:
            return True
        if _DISK_FULL_TEXT.search(str(exc)):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def human_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def disk_full_message(path: Path | str) -> str:
    """'no space left on the disk of PATH (N free of M)', sizes of the nearest existing directory."""
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        usage = shutil.disk_usage(probe)
        free = f"{human_bytes(usage.free)} free of {human_bytes(usage.total)}"
    except OSError:
        free = "free space unknown"
    return f"no space left on the disk of {path} ({free})"


def fsync_dir(path: Path) -> None:
    """fsync a directory so a rename or new entry in it survives a power loss."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_dir(path: Path) -> None:
    """Create `path` and missing parents, fsyncing each parent that gained an entry."""
    missing = []
    p = Path(path)
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir()
        except FileExistsError:  # another writer created it first
            continue
        fsync_dir(d.parent)


def _publish(tmp: Path, final: Path) -> None:
    """Give the complete temporary file its final name without ever replacing an existing file."""
    try:
        os.link(tmp, final)
    except FileExistsError as exc:
        tmp.unlink(missing_ok=True)
        raise FileExistsError(f"{final} already exists; a store never overwrites a file") from exc
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        # Filesystems without hard links: names carry a random uuid, so a plain rename is safe.
        if final.exists():
            raise FileExistsError(f"{final} already exists; a store never overwrites a file") from exc
        os.rename(tmp, final)
    else:
        tmp.unlink()
    fsync_dir(final.parent)


def write_atomic(final: Path, write: Callable[[BinaryIO], None]) -> Path:
    """Run `write(file)` on a hidden temporary file beside `final`, fsync it, then publish it.
    A full disk raises DiskFullError naming `final` (and leaves no temporary file)."""
    final = Path(final)
    tmp = tmp_path(final)
    try:
        ensure_dir(final.parent)
        with open(tmp, "xb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        _publish(tmp, final)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if is_disk_full(exc) and not isinstance(exc, DiskFullError):
            raise DiskFullError(final) from exc
        raise
    return final


def write_parquet(table: pa.Table, final: Path, *, row_group_size: int | None = None) -> Path:
    """Write `table` to `final` atomically (zstd-compressed Parquet)."""
    return write_atomic(
        final, lambda f: pq.write_table(table, f, compression=COMPRESSION, row_group_size=row_group_size)
    )


def write_parquet_batches(
    schema: pa.Schema, batches: Iterable[pa.Table | pa.RecordBatch], final: Path
) -> Path:
    """Stream `batches` (all of `schema`) into one Parquet file at `final`, atomically; memory is
    bounded by one batch."""

    def write(f: BinaryIO) -> None:
        with pq.ParquetWriter(f, schema, compression=COMPRESSION) as writer:
            for batch in batches:
                if isinstance(batch, pa.RecordBatch):
                    batch = pa.Table.from_batches([batch], schema=schema)
                writer.write_table(batch)

    return write_atomic(final, write)


def write_npy(array: np.ndarray, final: Path) -> str:
    """Save `array` as .npy at `final` atomically; returns the file's sha256 (hex)."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    data = buf.getvalue()
    write_atomic(final, lambda f: f.write(data))
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def remove_stale_tmp(root: Path, older_than_s: float) -> list[Path]:
    """Delete hidden `*.tmp` files under `root` last modified more than `older_than_s` ago (left by
    writers that crashed); younger ones may belong to a write in progress and are kept."""
    removed = []
    cutoff = time.time() - older_than_s
    for path in Path(root).rglob(f".*{TMP_SUFFIX}"):
        try:
            if path.is_file() and path.stat().st_mtime <= cutoff:
                path.unlink()
                removed.append(path)
        except FileNotFoundError:  # finished or removed meanwhile
            continue
    return removed
