"""`retain_freed_memory`: a batch-like allocation pattern stops faulting pages back in once the glibc
thresholds are set, and the user's own malloc settings are left alone. Each case runs in a fresh
interpreter, since the setting is process-wide."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="glibc mallopt")

SCRIPT = """
import resource, sys
import numpy as np
from eagle.backends.allocator import retain_freed_memory

applied = retain_freed_memory() if sys.argv[1] == "retain" else None

def batch():  # a forward's pattern: twelve 3 MB activations alive together, then all freed
    live = [np.ones(3 * 2**20 // 8) for _ in range(12)]
    return sum(float(a[0]) for a in live)

for _ in range(3):
    batch()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    batch()
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _run(mode: str, **env: str) -> tuple[str, int]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode], env=clean | env, capture_output=True, text=True, check=True
    ).stdout.split()
    return out[0], int(out[1])


def test_freed_batch_memory_is_reused_instead_of_faulted_back_in():
    _, default_faults = _run("plain")
    applied, retained_faults = _run("retain")
    assert applied == "True"
    assert default_faults > 10_000  # glibc's defaults return the buffers to the OS after each batch
    assert retained_faults < default_faults / 100


def test_the_users_own_malloc_settings_win():
    applied, _ = _run("retain", MALLOC_TRIM_THRESHOLD_="1000000")
    assert applied == "False"
