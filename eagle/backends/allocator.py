"""Keep freed memory in the process for the next scoring batch instead of returning it to the OS.

A batched scoring forward allocates and frees tens of MB of activations and pixel buffers per
batch. With glibc's defaults, blocks over its (adaptive, at most 32 MB) mmap threshold are unmapped
on free and heap tops are trimmed back to the OS, so every batch faults the same pages in again:
~5,000 page faults per 128 probe images, 5-10% of batched scoring time on a 2-core machine
(`benchmarks/RESULTS.md`, session 3). Fixing both thresholds makes freed blocks reusable. This is
process-wide, so it is applied once, only on glibc, and never over the user's own
`MALLOC_MMAP_THRESHOLD_` / `MALLOC_TRIM_THRESHOLD_`.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import sys

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1  # mallopt parameter numbers from glibc's malloc.h
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 2**20  # glibc's own adaptive maximum; larger blocks still get their own mapping
TRIM_THRESHOLD = 128 * 2**20  # free memory kept at the heap top before it is returned
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


@functools.cache
def retain_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds (once per process); True when they are in effect."""
    if sys.platform != "linux" or any(name in os.environ for name in _USER_SETTINGS):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl has no mallopt to speak of)
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    applied = (
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    )
    log.debug("glibc mmap/trim thresholds %s", "set" if applied else "not set")
    return applied
