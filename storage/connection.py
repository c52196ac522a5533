"""The one way to open DuckDB on a store: an in-memory connection with the store's views on which
no statement can write a file.

Barriers, each enough on its own for file writes:
- DuckDB's local filesystem is disabled, so no path on disk can be read or written by name
  (`COPY ... TO`, `EXPORT DATABASE`, `ATTACH`, `read_csv('/etc/passwd')`, the temp directory);
- the store is reached only through `eaglestore://` (storage.readonly_fs), which opens files for
  reading and refuses every change, hidden files and paths that leave the store;
- external access is off (no extensions, no Python objects in scope) and the configuration is
  locked, so no statement can lift any of this.

There is no temp directory: DuckDB allows every statement to write where it spills, so a
connection that could spill could also write. A query needing more than `memory_limit` (default 80%
of RAM) fails with DuckDB's out-of-memory error instead.
"""

from __future__ import annotations

from pathlib import Path

from storage.readonly_fs import PREFIX, ReadOnlyStoreFS
from storage.sql import quote_literal
from storage.views import create_views


def connect_readonly(root: Path):  # -> duckdb.DuckDBPyConnection
    """An in-memory DuckDB connection with the views of the store at `root`, unable to write files."""
    import duckdb

    con = duckdb.connect(":memory:")
    try:
        con.register_filesystem(ReadOnlyStoreFS(root))
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET temp_directory = ''")
        con.execute("SET allow_persistent_secrets = false")
        create_views(con, PREFIX)
        con.execute(f"SET allowed_directories = [{quote_literal(PREFIX)}]")
        con.execute("SET enable_external_access = false")
        # after enable_external_access: that setting checks the local filesystem when it changes
        con.execute("SET disabled_filesystems = 'LocalFileSystem'")
        con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con
