"""How the CLI reports a failure: one `Error:` line that names the cause and the fix, exit status 1
(2 for usage errors, as click does), a traceback only with `eagle-audit --debug`.

Library errors already carry their message (a backend error names the endpoint, an annotation
error the file and line, a store error the directory). What is left here: flattening multi-line
messages (DuckDB's, a server's), naming the disk and its free space when a disk fills, and a hint
for errors that no one anticipated.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from pathlib import Path

# errno values of a full disk or exhausted quota
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}
_DISK_FULL_TEXT = re.compile(r"no space left on device|disk quota exceeded|database or disk is full", re.I)
_OUR_PACKAGES = {"eagle", "eagle_audit", "storage", "auditors", "audit", "reports", "flows", "probe"}
# DuckDB appends the query with a caret under the fault ("LINE 1: ..." then "   ^^^"): drop it.
_SQL_CONTEXT = re.compile(r"\n\s*\nLINE \d+:.*", re.S)


def one_line(message: str) -> str:
    """`message` on one line: DuckDB's query context dropped, a Python traceback reduced to its
    last line, other line breaks joined with '; '."""
    text = _SQL_CONTEXT.sub("", str(message)).strip()
    if "Traceback (most recent call last)" in text:
        text = text.splitlines()[-1].strip()
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def is_disk_full(exc: BaseException) -> bool:
    """Whether `exc` (or what caused it) says the disk or the quota is full."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
            return True
        if _DISK_FULL_TEXT.search(str(exc)):
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False


def disk_full_message(path: str | os.PathLike[str] | None) -> str:
    """'no space left on the disk of PATH (N free of M); ...' for the nearest existing directory."""
    where = Path(path) if path else Path.cwd()
    probe = where
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        usage = shutil.disk_usage(probe)
        free = f"{human_bytes(usage.free)} free of {human_bytes(usage.total)}"
    except OSError:
        free = "free space unknown"
    return (
        f"no space left on the disk of {where} ({free}); free space there, or point --store "
        "(and $PREFECT_HOME) at a disk with room, then resume with the same --run-id"
    )


def _filename(exc: BaseException) -> str | None:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        path = getattr(exc, "path", None) or getattr(exc, "filename", None)
        if path:
            return str(path)
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return None


def describe(exc: BaseException) -> str:
    """The one-line message of an error that reached the CLI (without the 'Error: ' prefix)."""
    if is_disk_full(exc):
        return disk_full_message(_filename(exc))
    text = one_line(str(exc))
    if isinstance(exc, FileNotFoundError) and exc.filename and not text:
        text = f"{exc.filename} does not exist"
    ours = type(exc).__module__.split(".")[0] in _OUR_PACKAGES
    if text and (ours or isinstance(exc, ValueError | OSError | RuntimeError)):
        return text  # library errors whose message names the input and the fix
    name = type(exc).__name__
    hint = "unexpected; rerun with `eagle-audit --debug ...` for the traceback"
    return f"{name}: {text or 'no message'} ({hint})"
