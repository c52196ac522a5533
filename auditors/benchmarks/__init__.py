"""Benchmarks, one module each, found by name through BENCHMARKS (imported lazily).

>>> get_benchmark("pope").name
'pope'
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any

# name -> "module:attribute" of the benchmark object
BENCHMARKS: dict[str, str] = {
    "pope": "auditors.benchmarks.pope:POPE",
    "captions": "auditors.benchmarks.captions:CAPTIONS",
}


def get_benchmark(name: str) -> Any:
    """The benchmark object registered as `name`; unknown names fail with suggestions."""
    if name not in BENCHMARKS:
        close = difflib.get_close_matches(name, BENCHMARKS, n=3)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise KeyError(f"Unknown benchmark {name!r}.{hint} Available: {', '.join(sorted(BENCHMARKS))}")
    module, attr = BENCHMARKS[name].split(":")
    return getattr(importlib.import_module(module), attr)
