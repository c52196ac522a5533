"""How the CLI reports a failure: one `Error:` line that names the cause and the fix, exit status 1
(2 for usage errors, as click does), a traceback only with `eagle-audit --debug`.

Library errors already carry their message (a backend error names the endpoint, an annotation
error the file and line, a store error the directory). What is left here: flattening multi-line
messages (DuckDB's, a server's), naming the disk and its free space when a disk fills, and a hint
for errors that no one anticipated.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

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


def disk_full_message(path: str | os.PathLike[str] | None) -> str:
    """The CLI's disk-full line: where, how much is free there, and what to do."""
    from storage.writer import disk_full_message as where

    fix = (
        "free space there, or point --store (and $PREFECT_HOME) at a disk with room, then resume "
        "with the same --run-id"
    )
    if path is None:  # the error named no file: say so, with the working directory's disk
        return f"{where(Path.cwd())} (the error names no file: check the disks this command writes to); {fix}"
    return f"{where(path)}; {fix}"


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
    from storage.writer import is_disk_full

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
