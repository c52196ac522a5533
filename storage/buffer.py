"""`BufferedWriter`: rows of one run collected per table and written in batches, so the cost of a
write stays constant however many rows the run already has (one part file per flush, not per
row). Flushed when a table holds `max_rows` rows, when `max_seconds` passed since its last flush,
and on exit (also when the block raises). A crash loses at most the unflushed rows; a resumed run
recomputes them, and the store's key check keeps every key once.

    with BufferedWriter(store, run_id) as out:
        for rows in results:
            out.add("explanations", rows)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from storage.schemas import KEYS

log = logging.getLogger(__name__)


class BufferedWriter:
    def __init__(self, store: Any, run_id: str, *, max_rows: int = 256, max_seconds: float = 30.0) -> None:
        if max_rows < 1:
            raise ValueError(f"max_rows must be >= 1, got {max_rows}")
        self.store = store
        self.run_id = run_id
        self.max_rows = max_rows
        self.max_seconds = max_seconds
        self._rows: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {}
        self._since: dict[str, float] = {}
        self.rows_written = 0
        self.flushes = 0

    def add(self, table: str, rows: Iterable[dict[str, Any]]) -> None:
        """Queue rows of `table`; a key queued twice keeps its first row (as the store would)."""
        pending = self._rows.setdefault(table, {})
        self._since.setdefault(table, time.monotonic())
        for row in rows:
            pending.setdefault(tuple(row.get(c) for c in KEYS[table]) or (len(pending),), row)
        if len(pending) >= self.max_rows or time.monotonic() - self._since[table] >= self.max_seconds:
            self.flush(table)

    def pending(self, table: str) -> int:
        return len(self._rows.get(table, {}))

    def flush(self, table: str | None = None) -> int:
        """Write the queued rows of `table` (all tables when None); returns the rows written."""
        written = 0
        for name in [table] if table is not None else list(self._rows):
            rows = list(self._rows.pop(name, {}).values())
            self._since.pop(name, None)
            if rows:
                written += self.store.write(name, rows, self.run_id).rows_written
                self.flushes += 1
        self.rows_written += written
        return written

    def __enter__(self) -> BufferedWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()
