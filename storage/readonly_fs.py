"""A read-only fsspec filesystem rooted at a store directory: the only files a store's DuckDB
connection can reach.

DuckDB's `allowed_directories` grants read *and* write, so a connection allowed to read the store
could also overwrite its part files (`COPY ... TO '<store>/runs/.../part-x.parquet'`). Instead, the
connection disables DuckDB's local filesystem altogether and reads the store through this one,
registered under `eaglestore://`: it opens files for reading only, refuses every change (write,
truncate, remove, rename, mkdir), hides dot files (temporary files, `.prefect/`), and refuses any
path that leaves the store, also through `..` or a symbolic link.

    eaglestore://answers/*/*/[!.]*.parquet   ->   <store>/answers/*/*/[!.]*.parquet
"""

from __future__ import annotations

import datetime as dt
import glob as pyglob
import io
import os
import posixpath
import stat
import threading
from typing import Any, NoReturn

from fsspec.spec import AbstractFileSystem

from storage.duckdb_errors import noting_interrupts

PROTOCOL = "eaglestore"
PREFIX = PROTOCOL + "://"


class PositionalReader(io.RawIOBase):
    """A read-only file whose position is per thread, read with `os.pread`.

    DuckDB reads one handle from several threads, each as `seek(offset)` then `read(n)` through
    Python; with a shared position another thread's seek can land between the two (the GIL is
    released during the read), and the Parquet reader then decodes the wrong bytes."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self._fd = os.open(path, os.O_RDONLY)
        self._size = os.fstat(self._fd).st_size
        self._local = threading.local()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    @noting_interrupts
    def tell(self) -> int:
        return getattr(self._local, "pos", 0)

    @noting_interrupts
    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.tell(), io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self._local.pos = base + offset
        return self._local.pos

    @noting_interrupts
    def read(self, size: int | None = -1) -> bytes:
        pos = self.tell()
        if size is None or size < 0:
            size = max(0, self._size - pos)
        chunks = []
        while size > 0:
            chunk = os.pread(self._fd, size, pos)
            if not chunk:
                break
            chunks.append(chunk)
            pos, size = pos + len(chunk), size - len(chunk)
        self._local.pos = pos
        return b"".join(chunks)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    @noting_interrupts
    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()


class ReadOnlyStoreFS(AbstractFileSystem):
    """fsspec filesystem over the files of the store at `root`, for reading only.

    Paths are relative to the store root (`answers/model=m/...`); `eaglestore://` in front is
    optional. Every refusal is a PermissionError naming the path.
    """

    protocol = PROTOCOL
    root_marker = ""
    cachable = False  # one instance per store connection, never shared through fsspec's cache

    def __init__(self, root: str | os.PathLike[str]) -> None:
        super().__init__()
        self.root = os.path.realpath(root)
        # relative directory -> its real path, checked to be inside the store; resolved once per
        # connection (every file DuckDB reads would otherwise cost an lstat per path component)
        self._dirs: dict[str, str] = {"": self.root}

    # ---- paths ------------------------------------------------------------------------------
    @classmethod
    def _strip_protocol(cls, path: Any) -> str:
        text = os.fspath(path) if not isinstance(path, str) else path
        if text.startswith(PREFIX):
            text = text[len(PREFIX) :]
        return "/".join(part for part in text.split("/") if part)

    def unstrip_protocol(self, name: str) -> str:
        return PREFIX + self._strip_protocol(name)

    def _inside(self, real: str, rel: str) -> str:
        if real != self.root and not real.startswith(self.root + os.sep):
            raise PermissionError(f"{PREFIX}{rel}: the path leads outside the store {self.root}")
        return real

    def _real_dir(self, rel_dir: str) -> str:
        real = self._dirs.get(rel_dir)
        if real is None:
            real = self._inside(os.path.realpath(os.path.join(self.root, rel_dir)), rel_dir)
            self._dirs[rel_dir] = real
        return real

    def _local(self, path: Any) -> tuple[str, str]:
        """(relative path, real local path) of `path`; PermissionError unless it stays in the store
        (no '..', no hidden name, no symbolic link leading out)."""
        rel = self._strip_protocol(path)
        for part in rel.split("/"):
            if part in (".", ".."):
                raise PermissionError(f"{PREFIX}{rel}: '{part}' is not allowed in a store path")
            if part.startswith("."):
                raise PermissionError(f"{PREFIX}{rel}: hidden files of the store cannot be read")
        head, _, name = rel.rpartition("/")
        if not name:
            return rel, self.root
        full = os.path.join(self._real_dir(head), name)
        if os.path.islink(full):
            full = self._inside(os.path.realpath(full), rel)
        return rel, full

    @staticmethod
    def _entry(rel: str, st: os.stat_result) -> dict[str, Any]:
        kind = "directory" if stat.S_ISDIR(st.st_mode) else "file"
        return {"name": rel, "size": st.st_size, "type": kind, "mtime": st.st_mtime}

    # ---- reading ----------------------------------------------------------------------------
    @noting_interrupts
    def info(self, path: Any, **kwargs: Any) -> dict[str, Any]:
        rel, full = self._local(path)
        return self._entry(rel, os.stat(full))

    @noting_interrupts
    def exists(self, path: Any, **kwargs: Any) -> bool:
        # fsspec's own catches everything (`except:`), an interrupt too
        try:
            self.info(path)
        except Exception:  # noqa: BLE001 - missing, refused or unreadable: not there for DuckDB
            return False
        return True

    @noting_interrupts
    def ls(self, path: Any, detail: bool = True, **kwargs: Any) -> list[Any]:
        rel, full = self._local(path)
        if not os.path.isdir(full):
            return [self.info(rel)] if detail else [rel]
        entries = []
        with os.scandir(full) as it:
            for e in it:
                if e.name.startswith("."):
                    continue
                name = posixpath.join(rel, e.name) if rel else e.name
                try:
                    entries.append(self._entry(name, e.stat()))
                except FileNotFoundError:  # removed meanwhile (a compaction), or a dangling link
                    continue
        entries.sort(key=lambda x: x["name"])
        return entries if detail else [x["name"] for x in entries]

    @noting_interrupts
    def glob(self, path: Any, maxdepth: int | None = None, **kwargs: Any) -> Any:
        """Paths matching `path` (Python's glob rules: `*` skips dot files; `**` recurses), each
        checked like any path; a pattern starting outside the store or in a hidden directory is
        refused, not answered with no match."""
        rel = self._strip_protocol(path)
        literal = []
        for part in rel.split("/"):
            if any(c in part for c in "*?["):
                break
            literal.append(part)
        self._local("/".join(literal))
        if len(literal) == len(rel.split("/")):
            found = [rel] if self.exists(rel) else []
        else:
            found = []
            for match in pyglob.iglob(rel, root_dir=self.root, recursive="**" in rel):
                name = match.replace(os.sep, "/")
                try:
                    self._local(name)
                except PermissionError:  # a dot name matched literally, or a link out of the store
                    continue
                found.append(name)
            found.sort()
        if kwargs.get("detail"):
            return {name: self.info(name) for name in found}
        return found

    @noting_interrupts
    def modified(self, path: Any) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.info(path)["mtime"], tz=dt.UTC)

    @noting_interrupts
    def _open(self, path: Any, mode: str = "rb", **kwargs: Any):
        rel, full = self._local(path)
        if mode != "rb":
            self._refuse(f"open {PREFIX}{rel} for writing (mode {mode!r})")
        return PositionalReader(full)

    # ---- every change is refused ---------------------------------------------------------------
    @staticmethod
    def _refuse(what: str) -> NoReturn:
        raise PermissionError(f"cannot {what}: store connections are read-only")

    def mkdir(self, path: Any, create_parents: bool = True, **kwargs: Any) -> NoReturn:
        self._refuse(f"create the directory {path}")

    def makedirs(self, path: Any, exist_ok: bool = False) -> NoReturn:
        self._refuse(f"create the directory {path}")

    def rmdir(self, path: Any) -> NoReturn:
        self._refuse(f"remove {path}")

    def rm(self, path: Any, recursive: bool = False, maxdepth: int | None = None) -> NoReturn:
        self._refuse(f"remove {path}")

    def rm_file(self, path: Any) -> NoReturn:
        self._refuse(f"remove {path}")

    def _rm(self, path: Any) -> NoReturn:
        self._refuse(f"remove {path}")

    def mv(self, path1: Any, path2: Any, *args: Any, **kwargs: Any) -> NoReturn:
        self._refuse(f"move {path1} to {path2}")

    def cp_file(self, path1: Any, path2: Any, **kwargs: Any) -> NoReturn:
        self._refuse(f"copy {path1} to {path2}")

    def touch(self, path: Any, truncate: bool = True, **kwargs: Any) -> NoReturn:
        self._refuse(f"touch {path}")

    def pipe_file(self, path: Any, value: bytes, mode: str = "overwrite", **kwargs: Any) -> NoReturn:
        self._refuse(f"write {path}")

    def put_file(self, lpath: Any, rpath: Any, *args: Any, **kwargs: Any) -> NoReturn:
        self._refuse(f"write {rpath}")
