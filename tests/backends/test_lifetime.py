"""Children started with `parent_death_signal` end when the process that started them is killed
with SIGKILL (no clean-up of the parent runs), and the request is refused off the main thread,
where the kernel would signal the child as soon as the starting thread ended."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from eagle.backends.lifetime import parent_death_signal
from tests.support.processes import alive

PARENT = """
import signal, subprocess, sys
from eagle.backends.lifetime import parent_death_signal
from tests.support.processes import alive
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                         preexec_fn=parent_death_signal(signal.SIGTERM), start_new_session=True)
print(child.pid, flush=True)
sys.stdin.read()  # until killed
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_the_child_ends_when_its_parent_is_killed() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    child = int(parent.stdout.readline())
    try:
        assert alive(child)
        parent.kill()  # SIGKILL: no finally, no atexit in the parent
        parent.wait(timeout=30)
        deadline = time.monotonic() + 10
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(child), "the child outlived its killed parent"
    finally:
        if alive(child):
            os.kill(child, signal.SIGKILL)


def test_it_is_refused_off_the_main_thread() -> None:
    got: list[object] = []
    worker = threading.Thread(target=lambda: got.append(parent_death_signal(signal.SIGTERM)))
    worker.start()
    worker.join()
    assert got == [None]
    assert callable(parent_death_signal(signal.SIGTERM)) == sys.platform.startswith("linux")
