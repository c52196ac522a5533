"""Result storage: pinned Arrow schemas, atomic hive-partitioned Parquet writes, DuckDB views and
example queries. Imports neither Prefect nor a model backend; DuckDB loads when a connection opens.
"""

from storage.schemas import SCHEMA_VERSION, SCHEMAS
from storage.store import (
    CompactResult,
    MapRef,
    RunRecord,
    RunStateError,
    Store,
    StoreBusyError,
    StoreError,
    StoreNotFoundError,
    WriteResult,
)

__all__ = [
    "SCHEMA_VERSION",
    "SCHEMAS",
    "CompactResult",
    "MapRef",
    "RunRecord",
    "RunStateError",
    "Store",
    "StoreBusyError",
    "StoreError",
    "StoreNotFoundError",
    "WriteResult",
]
