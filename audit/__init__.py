"""The audit run, without Prefect: `run_audit(AuditConfig(...)) -> AuditResult`.

    from audit import AuditConfig, run_audit
    result = run_audit(AuditConfig(store="store"))       # the probe world with the shipped probe model

`audit.config` (validated settings), `audit.data` (load), `audit.generate`, `audit.mark`,
`audit.explain`, `audit.metrics` (the steps), `audit.engine` (the run's policy: resume, reuse,
buffered writes, failure), `audit.runner` (how step jobs execute). flows/ wraps the same steps as
Prefect tasks.
"""

from audit.config import AuditConfig, ConfigError, check_inputs
from audit.engine import AuditFailed, AuditResult, run_audit

__all__ = ["AuditConfig", "AuditFailed", "AuditResult", "ConfigError", "check_inputs", "run_audit"]
