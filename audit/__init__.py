"""The audit run, without Prefect: `run_audit(AuditConfig(...)) -> AuditResult`.

    from audit import AuditConfig, run_audit
    result = run_audit(AuditConfig(store="store"))       # the probe world with the shipped probe model

`audit.config` (validated settings), `audit.data` (load), `audit.generate`, `audit.mark`,
`audit.explain`, `audit.metrics` (the steps), `audit.engine` (the run's policy: resume, reuse,
buffered writes, failure), `audit.runner` (how step jobs execute). flows/ wraps the same steps as
Prefect tasks. Names are imported on first use, so checking a config stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AuditConfig": "audit.config",
    "ConfigError": "audit.config",
    "check_inputs": "audit.config",
    "AuditFailed": "audit.engine",
    "AuditResult": "audit.engine",
    "run_audit": "audit.engine",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'audit' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


__all__ = sorted(_EXPORTS)
