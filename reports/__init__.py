"""HTML audit reports: one self-contained file per run, built from DuckDB queries over the store.

>>> from reports import build_report
>>> build_report("results/", model="probe/llava-probe-128", out="audit.html")  # doctest: +SKIP
"""

from reports.build import build_report
from reports.queries import ReportError

__all__ = ["ReportError", "build_report"]
