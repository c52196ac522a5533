"""Where things live in a store directory.

    <store>/<table>/model=<safe model>/run_date=YYYY-MM-DD/part-<run_id>-<uuid>.parquet
    <store>/<table>/model=<safe model>/run_date=YYYY-MM-DD/cpart-<ns time>-<uuid>.parquet  (compacted)
    <store>/maps/<run_id>/<name>.npy                                    (full-resolution maps)
    <store>/_locks/                                                     (run and compaction locks)

Temporary files start with a dot and end in `.tmp`, so the views' glob (`[!.]*.parquet`) never
matches them. The raw model name is kept in the `model_id` column; the directory name is a
sanitised, collision-resistant form of it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]")
_PART_RE = re.compile(r"^part-(?P<run_id>.+)-(?P<uid>[0-9a-f]{32})\.parquet$")
_CPART_RE = re.compile(r"^cpart-(?P<ns>[0-9]{19,20})-(?P<uid>[0-9a-f]{32})\.parquet$")
# Glob of visible data files below a table directory (two partition levels).
PART_GLOB = "*/*/[!.]*.parquet"
COMPACTED_GLOB = "*/*/cpart-*.parquet"
TMP_SUFFIX = ".tmp"
MAX_MODEL_DIR = 96
GLOB_CHARS = set("*?[]{}")


def check_run_id(run_id: str) -> str:
    """Return `run_id` if it is safe in file names and globs, else raise ValueError."""
    if not isinstance(run_id, str) or not RUN_ID_RE.match(run_id):
        raise ValueError(
            f"run id {run_id!r} is not allowed: use 1-128 characters from A-Z a-z 0-9 . _ -, "
            "starting with a letter or digit (e.g. from storage.layout.new_run_id())"
        )
    return run_id


def new_run_id(now: dt.datetime | None = None) -> str:
    """A fresh, sortable run id: UTC time plus 8 random hex digits, e.g. "20250102T031500Z-1a2b3c4d"."""
    now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def safe_model_name(model_id: str) -> str:
    """A directory-safe, hive-safe name for `model_id`.

    "/" becomes "--" (as in the Hugging Face cache); any other character outside [A-Za-z0-9._-]
    becomes "_". When that is not reversible (other characters replaced, an original "--", a
    leading dot or dash, or truncation to 96 characters), 8 hex digits of the name's sha256 are appended
    so that different models never share a directory.

    >>> safe_model_name("Qwen/Qwen2.5-VL-7B-Instruct")
    'Qwen--Qwen2.5-VL-7B-Instruct'
    """
    if not model_id:
        raise ValueError("model id is empty; give the model name or path used for the run")
    name = _SAFE_CHARS.sub("_", model_id.replace("/", "--"))
    lossy = "--" in model_id or name.replace("--", "/") != model_id
    if name.startswith((".", "-")):  # hidden files; names that read as command-line options
        name, lossy = "_" + name, True
    if len(name) > MAX_MODEL_DIR:
        name, lossy = name[:MAX_MODEL_DIR], True
    if lossy:
        name = f"{name}-{hashlib.sha256(model_id.encode()).hexdigest()[:8]}"
    return name


@dataclass(frozen=True, kw_only=True, slots=True)
class Partition:
    """One hive partition of a run: all its rows in every table go below these two directories."""

    model: str  # safe model name (directory)
    run_date: dt.date

    def dir(self, root: Path, table: str) -> Path:
        return root / table / f"model={self.model}" / f"run_date={self.run_date.isoformat()}"

    @classmethod
    def for_run(cls, model_id: str, started_at: dt.datetime) -> Partition:
        return cls(model=safe_model_name(model_id), run_date=started_at.astimezone(dt.UTC).date())


def part_name(run_id: str) -> str:
    """A unique part file name for a write of `run_id`."""
    return f"part-{check_run_id(run_id)}-{uuid.uuid4().hex}.parquet"


def compacted_name(now_ns: int) -> str:
    return f"cpart-{now_ns:019d}-{uuid.uuid4().hex}.parquet"


def run_of_part(name: str) -> str | None:
    """The run id in a part file name, or None for compacted files and anything else."""
    match = _PART_RE.match(name)
    return match.group("run_id") if match else None


def is_compacted(name: str) -> bool:
    return _CPART_RE.match(name) is not None


def is_data_file(name: str) -> bool:
    """True for the files the views read (parts and compacted parts)."""
    return not name.startswith(".") and name.endswith(".parquet")


def tmp_path(final: Path) -> Path:
    """A hidden temporary name beside `final` (same directory, so rename is atomic)."""
    return final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}{TMP_SUFFIX}")


def check_store_path(root: Path) -> Path:
    """`root` made absolute; refuses paths with glob characters (they would break the views' globs)."""
    root = Path(root).expanduser().absolute()
    bad = GLOB_CHARS & set(str(root))
    if bad:
        raise ValueError(
            f"store path {str(root)!r} contains {''.join(sorted(bad))!r}, which DuckDB would read as a glob; "
            "choose a directory name without * ? [ ] { }"
        )
    return root


def map_relpath(run_id: str, name: str) -> Path:
    """Relative path of a map file: maps/<run_id>/<name>.npy (name sanitised like a model name)."""
    return Path("maps") / check_run_id(run_id) / f"{safe_model_name(name)}.npy"
