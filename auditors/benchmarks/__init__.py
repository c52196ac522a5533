"""Benchmarks, one module each, found by name through the registry (imported lazily).

Each entry names a `Benchmark` plug-in (`auditors.benchmarks.base`) as "module:attribute", so that
looking a name up imports only that benchmark. Adding a benchmark is one module with a plug-in
object and one `register()` call (here for the shipped ones; anywhere for your own).

>>> get_benchmark("pope").name
'pope'
>>> sorted(benchmark_names())
['captions', 'pope']
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any

# name -> "module:attribute" of the plug-in object (or the object itself, once registered so)
BENCHMARKS: dict[str, Any] = {
    "pope": "auditors.benchmarks.pope:POPE",
    "captions": "auditors.benchmarks.captions:CAPTIONS",
}


def register(name: str, benchmark: Any) -> None:
    """Register a plug-in under `name`: the object, or "module:attribute" to import it lazily. A
    name already taken by another plug-in is an error (unregister it first)."""
    current = BENCHMARKS.get(name)
    if current is not None and current != benchmark and _resolve(current) is not benchmark:
        raise ValueError(f"benchmark {name!r} is already registered ({current!r}); choose another name")
    BENCHMARKS[name] = benchmark


def unregister(name: str) -> None:
    BENCHMARKS.pop(name, None)


def benchmark_names() -> list[str]:
    return sorted(BENCHMARKS)


def get_benchmark(name: str) -> Any:
    """The benchmark object registered as `name`; unknown names fail with suggestions."""
    if name not in BENCHMARKS:
        close = difflib.get_close_matches(name, BENCHMARKS, n=3)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise KeyError(f"Unknown benchmark {name!r}.{hint} Available: {', '.join(sorted(BENCHMARKS))}")
    return _resolve(BENCHMARKS[name])


def _resolve(entry: Any) -> Any:
    if not isinstance(entry, str):
        return entry
    module, attr = entry.split(":")
    return getattr(importlib.import_module(module), attr)
