"""`Store`: the audit result store, a directory of hive-partitioned Parquet files read with DuckDB.

One call per pipeline step, so a thin Prefect task can wrap each:

    store = Store("results/")
    run_id = store.begin_run(RunRecord(model_id="llava-hf/llava-1.5-7b-hf", backend="vllm-server"))
    todo = [s for s in samples if s.id not in store.done_samples(run_id, "answers")]   # resume
    store.write("answers", rows, run_id)            # atomic part file; keys already stored are skipped
    store.finish_run(run_id, "complete")            # append-only status event
    con = store.connect()                           # DuckDB connection with the views; cannot write

Guarantees: every write is one new, uniquely named file published atomically (no reader ever sees
a partial file); a key already stored for a run is never stored again (a retried task or a
resumed run does not duplicate rows); runs never share files, so concurrent audits do not
interfere; compaction merges files of complete runs without a moment where rows show twice or
not at all.
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from storage import layout
from storage.connection import connect_readonly
from storage.duckdb_errors import raise_interrupt_behind, raised_in_callback
from storage.layout import Partition, check_run_id, check_store_path, is_compacted, is_data_file, run_of_part
from storage.rows import Rows, conform, to_json, to_table
from storage.schemas import (
    DATA_TABLES,
    FROM_COLUMN,
    KEYS,
    ORIGIN_COLUMN,
    SCHEMA_VERSION,
    SCHEMAS,
    read_schema,
    with_metadata,
)
from storage.sql import check_read_only, quote_identifier
from storage.writer import (
    ensure_dir,
    fsync_dir,
    is_disk_full,
    remove_stale_tmp,
    sha256_file,
    write_npy,
    write_parquet,
    write_parquet_batches,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

# Space a running run sets aside for its closing status event (a run_events part file is ~3 KB),
# and the part of it that holds a reason when even that cannot be written (a full disk).
_RESERVE_BYTES = 1 << 20
_LAST_WORDS_BYTES = 4096

# View that holds a stored table's rows (answers has a derived view on top of its stored rows).
_STORED_VIEW = {"runs": "run_records", "answers": "answers_stored"}


class StoreError(Exception):
    """Base class of the store's errors."""


class StoreNotFoundError(StoreError):
    pass


class RunStateError(StoreError):
    """The run does not exist, or its status does not allow the operation."""


class StoreBusyError(StoreError):
    """Another process holds the lock this operation needs."""


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, kw_only=True)
class RunRecord:
    """Everything needed to reproduce a run. `run_id` defaults to a fresh sortable id.

    decoding and config are JSON-able dicts; data_checksums maps data file names to sha256.
    """

    model_id: str  # raw model name or path
    backend: str  # "transformers", "vllm-server", "vllm-engine", ...
    run_id: str | None = None
    started_at: dt.datetime = field(default_factory=_utcnow)
    model_revision: str | None = None  # hub revision or checkpoint sha256
    engine_version: str | None = None
    decoding: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    data_checksums: dict[str, str] = field(default_factory=dict)
    code_version: str | None = None
    benchmark: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    host: str | None = field(default_factory=socket.gethostname)
    question_set: str | None = None  # fingerprint of the questions asked (storage.verdicts)
    sampling: dict[str, Any] | None = None  # how they were chosen: method, limit, seed, strata

    def __post_init__(self) -> None:
        if self.started_at.tzinfo is None:
            raise ValueError("RunRecord.started_at must be timezone-aware, e.g. datetime.now(datetime.UTC)")
        if self.run_id is None:
            object.__setattr__(self, "run_id", layout.new_run_id(self.started_at))
        check_run_id(self.run_id)
        layout.safe_model_name(self.model_id)  # raises on an empty name

    @property
    def partition(self) -> Partition:
        return Partition.for_run(self.model_id, self.started_at)

    def to_row(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "started_at": self.started_at,
            "model_id": self.model_id,
            "model_revision": self.model_revision,
            "backend": self.backend,
            "engine_version": self.engine_version,
            "decoding": to_json(self.decoding),
            "seed": self.seed,
            "data_checksums": sorted(self.data_checksums.items()),
            "code_version": self.code_version,
            "benchmark": self.benchmark,
            "config": to_json(self.config),
            "host": self.host,
            "schema_version": SCHEMA_VERSION,
            "question_set": self.question_set,
            "sampling": None if self.sampling is None else to_json(self.sampling),
        }


# Fields that must match for a run to be resumed: a resumed run must produce the same answers.
_RESUME_FIELDS = (
    "model_id",
    "model_revision",
    "backend",
    "decoding",
    "seed",
    "data_checksums",
    "code_version",
    "question_set",
)


@dataclass(frozen=True, kw_only=True, slots=True)
class WriteResult:
    table: str
    path: Path | None  # the new part file, None when every row was already stored
    rows_written: int
    rows_skipped: int  # rows whose key the run already had


@dataclass(frozen=True, kw_only=True, slots=True)
class MapRef:
    path: str  # relative to the store root, POSIX separators
    sha256: str


@dataclass(frozen=True, kw_only=True, slots=True)
class CompactResult:
    files_written: int  # new compacted files
    parts_merged: int  # files merged into them
    rows: int  # rows in the new files
    files_deleted: int  # replaced files removed (older than the grace period)
    tmp_removed: int  # stale temporary files removed


@dataclass(frozen=True, kw_only=True, slots=True)
class TableInfo:
    table: str
    files: int  # visible data files (replaced ones not counted)
    rows: int
    bytes: int
    replaced_files: int  # compacted away, awaiting deletion


@dataclass(frozen=True, kw_only=True, slots=True)
class StoreInfo:
    root: Path
    tables: tuple[TableInfo, ...]
    runs: tuple[dict[str, Any], ...]  # run_id, model_id, started_at, status, answers
    tmp_files: int


@dataclass(kw_only=True, slots=True)
class _Run:
    partition: Partition
    status: str


class Store:
    """A result store at `path` (created when missing unless `create=False`).

    Thread-safe within a process; several processes may write different runs at once.
    """

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True) -> None:
        root = check_store_path(Path(path))
        if not root.exists():
            if not create:
                raise StoreNotFoundError(
                    f"store directory '{path}' does not exist; pass the --store directory an audit wrote to"
                )
            ensure_dir(root)
        if not root.is_dir():
            raise StoreNotFoundError(f"store path '{path}' is not a directory")
        self.root = root
        self._lock = threading.RLock()
        self._runs: dict[str, _Run] = {}
        self._done: dict[tuple[str, str], set[tuple[Any, ...]]] = {}
        self._run_locks: dict[str, int] = {}  # run id -> fd holding its flock while this Store writes it
        self._con: Any = None

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    # ---- connections --------------------------------------------------------------------
    def connect(self):  # -> duckdb.DuckDBPyConnection
        """An in-memory DuckDB connection with the store's views (runs, answers, marks, explanations,
        metrics, run_records, run_events) on which no statement can write a file: it reads the store
        and nothing else, and its configuration is locked (storage.connection). `query()` also
        refuses every statement that is not a SELECT. Creating the views globs and reads the part
        files' footers, so a file that compaction removes meanwhile restarts it."""
        return _retry_vanished(lambda: connect_readonly(self.root))

    def query(self, sql: str, params: dict[str, Any] | list[Any] | None = None) -> pa.Table:
        """Run one read-only statement (SELECT or EXPLAIN) with bound parameters; returns Arrow.

        Raises ReadOnlyQueryError for any other statement (COPY, CREATE, INSERT, ATTACH, ...)."""
        import duckdb

        statements = check_read_only(sql)
        if len(statements) != 1:
            raise ValueError(f"pass one statement at a time (got {len(statements)})")
        con = self.connect()
        try:
            return _retry_vanished(lambda: con.sql(statements[0], params=params).to_arrow_table())
        except duckdb.Error as exc:
            # a refusal of the store's filesystem comes back as a Python traceback: keep its last line
            line = raised_in_callback(str(exc))
            if line is None:
                raise
            raise type(exc)(line) from exc
        finally:
            con.close()

    def _cursor(self):
        with self._lock:
            if self._con is None:
                self._con = self.connect()
            return self._con.cursor()

    # ---- runs ---------------------------------------------------------------------------
    def begin_run(self, record: RunRecord) -> str:
        """Record a run (status running) and return its id. If the run already exists and is not
        complete, it is resumed: its record must match on the fields that determine the answers
        (model, revision, backend, decoding, seed, data checksums, code version).

        A resumed run still marked running had a previous attempt that died without closing it
        (its process held the run's lock until it ended): that attempt is closed as failed, with
        the reason it left if it could not write one (a full disk), and the reason is logged."""
        run_id = check_run_id(record.run_id or "")
        with self._lock:
            fresh_lock = self._acquire_run_lock(run_id)
            reserved = False
            try:
                existing = self._stored_record(run_id)
                if existing is None:
                    self._reserve(run_id)
                    reserved = True
                    self._write_rows("runs", [record.to_row()], run_id, record.partition)
                    partition = record.partition
                else:
                    if existing["status"] == "complete":
                        raise RunStateError(
                            f"run {run_id!r} is already complete in {self.root}; "
                            "start a new run id to audit again"
                        )
                    self._check_resumable(run_id, existing, record)
                    partition = Partition(model=existing["model"], run_date=existing["run_date"])
                    self._runs[run_id] = _Run(partition=partition, status=existing["status"])
                    if existing["status"] == "running" and fresh_lock:
                        self._close_dead_attempt(run_id)
                    log.info("resuming run %s (attempt %d)", run_id, existing["attempts"] + 1)
                if not reserved:
                    self._reserve(run_id)
                    reserved = True
                self._runs[run_id] = _Run(partition=partition, status="running")
                self._write_event(run_id, "running", None)
            except BaseException:
                if reserved:  # (never before: the reserve may hold a dead attempt's reason)
                    self._drop_reserve(run_id)
                self._runs.pop(run_id, None)
                self._release_run_lock(run_id)
                raise
        return run_id

    def finish_run(self, run_id: str, status: str, error: str | None = None) -> None:
        """Close a run: append a `complete` or `failed` status event (the run's files stay as written)."""
        if status not in ("complete", "failed"):
            raise ValueError(f"status {status!r} is not a final status; use 'complete' or 'failed'")
        with self._lock:
            run = self._run(run_id)
            if run.status == "complete":
                raise RunStateError(f"run {run_id!r} is already complete; it cannot be closed again")
            try:
                self._write_event(run_id, status, error)
            except OSError as exc:
                if not is_disk_full(exc):
                    raise
                # leave the reason where the next start finds it, in space this run set aside at
                # its start, then free the rest of that space and write the status again; if even
                # that fails the run stays `running` and the next start reports the reason
                self._leave_last_words(run_id, f"{error or status} (then closing the run failed: {exc})")
                self._write_event(run_id, status, error)
            run.status = status
            self._drop_reserve(run_id)
            self._release_run_lock(run_id)

    @contextmanager
    def open_run(self, record: RunRecord) -> Iterator[str]:
        """`with store.open_run(record) as run_id:` begins the run and closes it complete, or failed
        with the exception's text if the block raises."""
        run_id = self.begin_run(record)
        try:
            yield run_id
        except BaseException as exc:
            self.finish_run(run_id, "failed", error=f"{type(exc).__name__}: {exc}")
            raise
        self.finish_run(run_id, "complete")

    def run_status(self, run_id: str) -> str | None:
        """The latest status of `run_id` as stored ('running', 'complete', 'failed'), None if unknown."""
        row = self._stored_record(check_run_id(run_id))
        return None if row is None else row["status"]

    def _write_event(self, run_id: str, status: str, error: str | None) -> None:
        row = {
            "status": status,
            "event_at": _utcnow(),
            "error": error,
            "host": socket.gethostname(),
            "pid": os.getpid(),
        }
        self._write_rows("run_events", [row], run_id, self._runs[run_id].partition)

    # ---- space for the last status of a run ----------------------------------------------------
    def _reserve_path(self, run_id: str) -> Path:
        return self.root / "_locks" / f"run-{run_id}.reserve"

    def _reserve(self, run_id: str) -> None:
        """Set aside _RESERVE_BYTES for this run's closing status event, zeroed (no last words)."""
        ensure_dir(self.root / "_locks")
        fd = os.open(self._reserve_path(run_id), os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            try:
                os.posix_fallocate(fd, 0, _RESERVE_BYTES)
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                    raise
                os.pwrite(fd, b"\0" * _RESERVE_BYTES, 0)  # filesystems without fallocate
            os.fsync(fd)
        finally:
            os.close(fd)

    def _leave_last_words(self, run_id: str, text: str) -> None:
        """Write `text` over the start of the reserve (already allocated: needs no new space), then
        give the rest of the reserve back to the disk."""
        path = self._reserve_path(run_id)
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return
        try:
            words = text.encode("utf-8", "replace")[: _LAST_WORDS_BYTES - 1] + b"\0"
            os.pwrite(fd, words, 0)
            os.fsync(fd)
            os.ftruncate(fd, _LAST_WORDS_BYTES)
        finally:
            os.close(fd)

    def _last_words(self, run_id: str) -> str | None:
        try:
            with open(self._reserve_path(run_id), "rb") as f:
                head = f.read(_LAST_WORDS_BYTES)
        except FileNotFoundError:
            return None
        text = head.split(b"\0", 1)[0].decode("utf-8", "replace").strip()
        return text or None

    def _drop_reserve(self, run_id: str) -> None:
        self._reserve_path(run_id).unlink(missing_ok=True)

    def _close_dead_attempt(self, run_id: str) -> None:
        """Close the previous attempt of `run_id`, which died while running: a `failed` event with
        what it left as its reason (or that it left none: killed or crashed)."""
        cur = self._cursor()
        try:
            row = _retry_vanished(
                lambda: cur.execute(
                    "SELECT host, pid, event_at FROM run_events WHERE run_id = ? AND status = 'running' "
                    "ORDER BY event_at DESC LIMIT 1",
                    [run_id],
                ).fetchone()
            )
        finally:
            cur.close()
        who = "" if row is None else f" (pid {row[1]} on {row[0]}, started {row[2]:%Y-%m-%d %H:%M:%S} UTC)"
        why = self._last_words(run_id) or "no reason was recorded: it was killed or crashed"
        message = f"the previous attempt{who} died without closing the run: {why}"
        log.warning("run %s: %s", run_id, message)
        self._write_event(run_id, "failed", message)

    def _stored_record(self, run_id: str) -> dict[str, Any] | None:
        cur = self._cursor()

        def fetch() -> dict[str, Any] | None:
            result = cur.execute("SELECT * FROM runs WHERE run_id = ? ORDER BY started_at LIMIT 1", [run_id])
            row = result.fetchone()
            return None if row is None else dict(zip([d[0] for d in result.description], row, strict=True))

        try:
            return _retry_vanished(fetch)
        finally:
            cur.close()

    def _check_resumable(self, run_id: str, existing: dict[str, Any], record: RunRecord) -> None:
        new = record.to_row()
        old = dict(existing)
        old["data_checksums"] = sorted((existing["data_checksums"] or {}).items())
        diffs = [
            f"{name}: stored {old[name]!r}, now {new[name]!r}"
            for name in _RESUME_FIELDS
            # a run begun before question sets were recorded (schema < 3) resumes on its answers
            if old[name] != new[name] and not (name == "question_set" and old[name] is None)
        ]
        if diffs:
            raise RunStateError(
                f"cannot resume run {run_id!r}: its settings differ ({'; '.join(diffs)}); start a new run id"
            )

    def _run(self, run_id: str) -> _Run:
        check_run_id(run_id)
        run = self._runs.get(run_id)
        if run is None:
            row = self._stored_record(run_id)
            if row is None:
                raise RunStateError(f"run {run_id!r} is not in {self.root}; call begin_run first")
            run = _Run(
                partition=Partition(model=row["model"], run_date=row["run_date"]), status=row["status"]
            )
            self._runs[run_id] = run
        return run

    def _acquire_run_lock(self, run_id: str) -> bool:
        """Take the run's lock; True when this call took it (False: this Store already held it)."""
        if run_id in self._run_locks:
            return False
        fd = self._flock(f"run-{run_id}.lock")
        if fd is None:
            raise StoreBusyError(
                f"run {run_id!r} is being written by another process (lock {self.root / '_locks'}); "
                "wait for it to finish or choose another run id"
            )
        self._run_locks[run_id] = fd
        return True

    def _release_run_lock(self, run_id: str) -> None:
        fd = self._run_locks.pop(run_id, None)
        if fd is not None:
            os.close(fd)  # closing releases the flock

    def _flock(self, name: str) -> int | None:
        """An exclusive, non-blocking flock on <store>/_locks/<name>: the fd, or None if held elsewhere.
        The OS releases it when the holder exits, also on a crash."""
        ensure_dir(self.root / "_locks")
        fd = os.open(self.root / "_locks" / name, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    # ---- data ---------------------------------------------------------------------------
    def write(self, table: str, rows: Rows, run_id: str) -> WriteResult:
        """Append `rows` (dicts or an Arrow table) to `table` for a running run, as one new part file.

        Rows whose key (storage.schemas.KEYS) the run already stored are skipped, so retrying a write
        or resuming a run never duplicates rows; the same key twice within `rows` is an error."""
        if table not in DATA_TABLES:
            raise ValueError(
                f"cannot write table {table!r} directly; data tables are {', '.join(DATA_TABLES)} "
                "(runs and run_events are written by begin_run/finish_run)"
            )
        with self._lock:
            run = self._run(run_id)
            if run.status != "running":
                raise RunStateError(
                    f"run {run_id!r} is {run.status}; only a running run accepts rows "
                    "(call begin_run with the same record to resume a failed run)"
                )
            data = to_table(table, rows, run_id)
            keys = _key_tuples(data, KEYS[table])
            if len(set(keys)) != len(keys):
                dup = next(k for k in keys if keys.count(k) > 1)
                raise ValueError(
                    f"rows for table {table!r} repeat the key {dict(zip(KEYS[table], dup, strict=True))}; "
                    "each key may appear once per run"
                )
            done = self._done_set(run_id, table)
            keep = [i for i, k in enumerate(keys) if k not in done]
            skipped = data.num_rows - len(keep)
            if not keep:
                return WriteResult(table=table, path=None, rows_written=0, rows_skipped=skipped)
            if skipped:
                data = data.take(pa.array(keep, pa.int64()))
            path = self._write_table(table, data, run_id, run.partition)
            done.update(keys[i] for i in keep)
            return WriteResult(table=table, path=path, rows_written=data.num_rows, rows_skipped=skipped)

    def done_keys(self, run_id: str, table: str) -> set[tuple[Any, ...]]:
        """The keys (columns storage.schemas.KEYS[table]) that `run_id` has stored in `table`."""
        if not KEYS.get(table):
            raise ValueError(f"table {table!r} has no row keys; choose one of {', '.join(DATA_TABLES)}")
        with self._lock:
            return set(self._done_set(run_id, table))

    def done_samples(self, run_id: str, table: str = "answers") -> set[str]:
        """The sample ids `run_id` has rows for in `table` (the unit a resumed run skips)."""
        if "sample_id" not in KEYS.get(table, ()):
            raise ValueError(f"table {table!r} has no sample_id key; use answers, marks or explanations")
        index = KEYS[table].index("sample_id")
        return {k[index] for k in self.done_keys(run_id, table)}

    def find_explanations(
        self, cache_keys: Iterable[str], *, exclude_run: str | None = None
    ) -> dict[str, list[dict[str, Any]]]:
        """Stored explanation rows by `cache_key`, to reuse in another run of this store: for each
        key, every row one run stored under it (the earliest such run; only when none of them holds
        an error), without `run_id` and the partition columns, ready for `write`."""
        keys = sorted(set(cache_keys))
        if not keys:
            return {}
        cur = self._cursor()
        sql = """
            WITH hits AS (
                SELECT * EXCLUDE (model, run_date) FROM explanations
                WHERE cache_key IN (SELECT unnest($keys)) AND run_id IS DISTINCT FROM $exclude
            ),
            pick AS (
                SELECT cache_key, min(run_id) AS run_id FROM hits GROUP BY cache_key
            )
            SELECT hits.* FROM hits JOIN pick USING (cache_key, run_id)
            ORDER BY cache_key, method, target_position
        """
        try:
            table = _retry_vanished(
                lambda: cur.sql(sql, params={"keys": keys, "exclude": exclude_run}).to_arrow_table()
            )
        finally:
            cur.close()
        found: dict[str, list[dict[str, Any]]] = {}
        for row in table.drop_columns(["run_id"]).to_pylist():
            found.setdefault(row["cache_key"], []).append(row)
        return {k: rows for k, rows in found.items() if all(r["error"] is None for r in rows)}

    def _done_set(self, run_id: str, table: str) -> set[tuple[Any, ...]]:
        key = (run_id, table)
        if key not in self._done:
            run = self._run(run_id)
            cols = ", ".join(quote_identifier(c) for c in KEYS[table])
            view = quote_identifier(_STORED_VIEW.get(table, table))
            cur = self._cursor()
            try:
                rows = _retry_vanished(
                    lambda: cur.execute(
                        f"SELECT DISTINCT {cols} FROM {view} WHERE run_id = ? AND model = ? AND run_date = ?",
                        [run_id, run.partition.model, run.partition.run_date],
                    ).fetchall()
                )
            finally:
                cur.close()
            self._done[key] = {tuple(r) for r in rows}
        return self._done[key]

    def _write_rows(self, table: str, rows: list[dict[str, Any]], run_id: str, partition: Partition) -> Path:
        return self._write_table(table, to_table(table, rows, run_id), run_id, partition)

    def _write_table(self, table: str, data: pa.Table, run_id: str, partition: Partition) -> Path:
        final = partition.dir(self.root, table) / layout.part_name(run_id)
        write_parquet(data, final)
        log.debug("wrote %d rows to %s", data.num_rows, final)
        return final

    # ---- maps ---------------------------------------------------------------------------
    def write_map(self, run_id: str, name: str, array: np.ndarray) -> MapRef:
        """Save a full-resolution map as <store>/maps/<run_id>/<name>.npy (atomic, never overwriting);
        returns the relative path and sha256 to put in the explanations row."""
        rel = layout.map_relpath(run_id, name)
        digest = write_npy(array, self.root / rel)
        return MapRef(path=rel.as_posix(), sha256=digest)

    def read_map(self, path: str, sha256: str | None = None) -> np.ndarray:
        """Load a map by its stored relative path, verifying its sha256 when given."""
        full = (self.root / path).resolve()
        if self.root.resolve() not in full.parents:
            raise ValueError(f"map path {path!r} points outside the store {self.root}")
        if not full.is_file():
            raise FileNotFoundError(f"map file {full} does not exist (referenced as {path!r})")
        if sha256 is not None and (actual := sha256_file(full)) != sha256:
            raise ValueError(
                f"map file {full} has sha256 {actual}, but the store recorded {sha256}: it changed"
            )
        return np.load(full, allow_pickle=False)

    # ---- maintenance --------------------------------------------------------------------
    def compact(
        self, model: str | None = None, *, grace_s: float = 60.0, tmp_age_s: float = 3600.0
    ) -> CompactResult:
        """Merge the part files of complete runs into one file per partition and table.

        Each merged file records which files it replaces; the views hide those from the moment the
        merged file appears, so queries never see a row twice or miss one. Replaced files are deleted
        once their replacement is `grace_s` seconds old (queries planned before may still read them),
        and hidden temporary files older than `tmp_age_s` (left by crashed writers) are removed.
        `model` (raw id or directory name) restricts compaction to one model."""
        fd = self._flock("compact.lock")
        if fd is None:
            raise StoreBusyError(f"another compaction of {self.root} is running; try again when it ends")
        try:
            cur = self._cursor()
            try:
                sql = "SELECT run_id FROM runs WHERE status = 'complete'"
                complete = {r for (r,) in _retry_vanished(lambda: cur.execute(sql).fetchall())}
            finally:
                cur.close()
            written = merged = rows = deleted = 0
            for table in SCHEMAS:
                for part_dir in self._partition_dirs(table, model):
                    result = _compact_partition(table, part_dir, complete)
                    if result:
                        written, merged, rows = written + 1, merged + result[0], rows + result[1]
                    deleted += _delete_replaced(part_dir, grace_s)
            tmp = remove_stale_tmp(self.root, tmp_age_s)
            log.info(
                "compacted %d files into %d (%d rows), deleted %d, removed %d temp files",
                merged,
                written,
                rows,
                deleted,
                len(tmp),
            )
            return CompactResult(
                files_written=written,
                parts_merged=merged,
                rows=rows,
                files_deleted=deleted,
                tmp_removed=len(tmp),
            )
        finally:
            os.close(fd)

    def _partition_dirs(self, table: str, model: str | None) -> list[Path]:
        base = self.root / table
        if not base.is_dir():
            return []
        wanted = None if model is None else {f"model={model}", f"model={layout.safe_model_name(model)}"}
        return sorted(
            d
            for m in base.iterdir()
            if m.is_dir() and (wanted is None or m.name in wanted)
            for d in m.iterdir()
            if d.is_dir() and d.name.startswith("run_date=")
        )

    def info(self) -> StoreInfo:
        """Tables (files, rows, bytes, replaced files), runs with their status and answer counts."""
        con = self.connect()
        try:
            tables = []
            for table in SCHEMAS:
                files = replaced = size = 0
                for part_dir in self._partition_dirs(table, None):
                    gone = _replaced_names(part_dir)
                    for f in part_dir.iterdir():
                        if not is_data_file(f.name):
                            continue
                        if f.name in gone:
                            replaced += 1
                            continue
                        try:
                            size += f.stat().st_size
                        except FileNotFoundError:  # deleted by a compaction meanwhile
                            continue
                        files += 1
                view = quote_identifier(_STORED_VIEW.get(table, table))
                (n,) = _retry_vanished(lambda v=view: con.execute(f"SELECT count(*) FROM {v}").fetchone())
                tables.append(
                    TableInfo(table=table, files=files, rows=n, bytes=size, replaced_files=replaced)
                )
            result = _retry_vanished(
                lambda: con.execute(
                    "SELECT r.run_id, r.model_id, r.started_at, r.status, count(a.sample_id) AS answers "
                    "FROM runs r LEFT JOIN answers_stored a USING (run_id) "
                    "GROUP BY ALL ORDER BY r.started_at, r.run_id"
                )
            )
            names = [d[0] for d in result.description]
            runs = tuple(dict(zip(names, row, strict=True)) for row in result.fetchall())
        finally:
            con.close()
        tmp = sum(1 for _ in self.root.rglob(f".*{layout.TMP_SUFFIX}"))
        return StoreInfo(root=self.root, tables=tuple(tables), runs=runs, tmp_files=tmp)

    def close(self) -> None:
        """Release run locks and the internal connection (also done when the process exits)."""
        with self._lock:
            for run_id in list(self._run_locks):
                self._release_run_lock(run_id)
            if self._con is not None:
                self._con.close()
                self._con = None


def _retry_vanished(fn: Callable[[], T]) -> T:
    """Run a query again when a file it globbed was deleted before DuckDB opened it (compaction
    removing replaced files); the next glob no longer lists it. Three attempts. (The store's
    filesystem raises FileNotFoundError, which DuckDB passes on as an Error with its text.)
    An interrupt that DuckDB turned into an error is raised as an interrupt (storage.duckdb_errors)."""
    import duckdb

    for attempt in range(3):
        try:
            return fn()
        except Exception as exc:
            raise_interrupt_behind(exc)
            if not isinstance(exc, duckdb.Error) or "No such file" not in str(exc) or attempt == 2:
                raise
            log.debug("a file vanished during a query, retrying: %s", exc)
    raise AssertionError("unreachable")


def _key_tuples(data: pa.Table, columns: tuple[str, ...]) -> list[tuple[Any, ...]]:
    if not columns:
        return [(i,) for i in range(data.num_rows)]
    values = [data.column(c).to_pylist() for c in columns]
    return list(zip(*values, strict=True))


def _replaced_names(part_dir: Path) -> dict[str, float]:
    """Files of `part_dir` that compacted files replace -> the newest replacing file's mtime."""
    replaced: dict[str, float] = {}
    for f in part_dir.iterdir():
        if not is_compacted(f.name):
            continue
        try:
            mtime = f.stat().st_mtime
            lineage = pq.read_table(f, columns=[ORIGIN_COLUMN, FROM_COLUMN])
        except FileNotFoundError:
            continue
        for column in (ORIGIN_COLUMN, FROM_COLUMN):
            for name in lineage.column(column).unique().to_pylist():
                if name is not None:
                    replaced[name] = max(replaced.get(name, 0.0), mtime)
    return replaced


def _compact_partition(table: str, part_dir: Path, complete: set[str]) -> tuple[int, int] | None:
    """Merge the live files of complete runs (and earlier compacted files) in one partition directory.
    Returns (files merged, rows) or None when there is nothing to merge."""
    replaced = _replaced_names(part_dir)
    live = sorted(f for f in part_dir.iterdir() if is_data_file(f.name) and f.name not in replaced)
    parts = [f for f in live if run_of_part(f.name) in complete]
    previous = [f for f in live if is_compacted(f.name)]
    sources = previous + parts
    if not parts or len(sources) < 2:
        return None
    schema = read_schema(table)  # files written before a schema change keep their legacy columns
    lineage = [pa.field(ORIGIN_COLUMN, pa.string(), False), pa.field(FROM_COLUMN, pa.string(), False)]
    out_schema = with_metadata(pa.schema(list(schema) + lineage))
    expected = sum(pq.read_metadata(f).num_rows for f in sources)

    def batches() -> Iterator[pa.Table]:
        n = 0
        for f in sources:
            data = pq.read_table(f)
            origin = (
                data.column(ORIGIN_COLUMN)
                if is_compacted(f.name)
                else pa.array([f.name] * data.num_rows, pa.string())
            )
            keep = [c for c in data.column_names if c not in (ORIGIN_COLUMN, FROM_COLUMN)]
            body = conform(table, data.select(keep), schema)
            yield pa.Table.from_arrays(
                [*body.columns, origin, pa.array([f.name] * data.num_rows, pa.string())], schema=out_schema
            )
            n += data.num_rows
        if n != expected:  # raised before the merged file is published
            raise RuntimeError(f"compaction of {part_dir} read {n} rows but the sources declare {expected}")

    final = part_dir / layout.compacted_name(time.time_ns())
    write_parquet_batches(out_schema, batches(), final)
    log.info("compacted %d files (%d rows) of %s into %s", len(sources), expected, table, final.name)
    return len(sources), expected


def _delete_replaced(part_dir: Path, grace_s: float) -> int:
    """Delete files whose replacement has existed for at least `grace_s` seconds."""
    now = time.time()
    deleted = 0
    for name, since in _replaced_names(part_dir).items():
        path = part_dir / name
        if now - since >= grace_s and path.exists():
            path.unlink(missing_ok=True)
            deleted += 1
    if deleted:
        fsync_dir(part_dir)
    return deleted
