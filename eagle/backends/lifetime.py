"""Child processes that do not outlive the process that started them, however it ends.

A child started with `subprocess.Popen` keeps running when its parent is killed with SIGKILL (no
`finally`, no atexit runs). On Linux the kernel can send the child a signal when the parent dies
(`PR_SET_PDEATHSIG`); `parent_death_signal` asks for it. Used for the vLLM servers this project
starts (`eagle-audit serve probe`, `bench backends`) and the CLI's temporary Prefect server.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1


def parent_death_signal(signum: int) -> Callable[[], None] | None:
    """A `preexec_fn` that has the kernel send `signum` to the child when this process dies, or
    None where that cannot be promised: off Linux, and off the main thread (the kernel sends it when
    the *thread* that started the child ends, so a child started from a worker thread would get it
    as soon as that thread finished)."""
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: the child must not dlopen
    parent = os.getpid()

    def preexec() -> None:  # runs in the child between fork and exec
        prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the request took effect
            os.kill(os.getpid(), signum)

    return preexec
