"""How an audit's step jobs are executed. The engine hands a step function and its jobs to a
`Runner` and gets results back as they finish; it never knows whether they ran inline, in
threads, as Prefect tasks or on a Dask cluster (flows/ provides those runners).

A runner keeps at most `window` jobs in flight. That is the audit's only concurrency bound besides
the backend's own request bound: it lives in this process, so nothing a killed process held can
block a later run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Protocol, TypeVar

J = TypeVar("J")
R = TypeVar("R")
F = TypeVar("F")


class Runner(Protocol):
    def map(
        self, fn: Callable[[J], R], jobs: Sequence[J], *, name: str, window: int
    ) -> Iterator[tuple[J, R]]:
        """Run `fn(job)` for every job, at most `window` at once; yield (job, result) as each
        finishes. The first exception is raised after the jobs in flight are cancelled or done."""
        ...


class LocalRunner:
    """Jobs in this process: inline when `window` is 1, else in a thread pool of `window` threads."""

    def map(
        self, fn: Callable[[J], R], jobs: Sequence[J], *, name: str, window: int
    ) -> Iterator[tuple[J, R]]:
        if window <= 1:
            for job in jobs:
                yield job, fn(job)
            return
        with ThreadPoolExecutor(max_workers=window, thread_name_prefix=f"audit-{name}") as pool:
            yield from windowed(lambda job: pool.submit(fn, job), jobs, window, _first_done)


def _first_done(futures: Iterable[Future]) -> set[Future]:
    return wait(futures, return_when=FIRST_COMPLETED)[0]


def windowed(
    submit: Callable[[J], F],
    jobs: Sequence[J],
    window: int,
    first_done: Callable[[Iterable[F]], Iterable[F]],
) -> Iterator[tuple[J, Any]]:
    """Keep `window` futures in flight over `jobs`; yield (job, result) in completion order.
    `submit` starts one job and returns its future; `first_done` blocks until at least one of the
    given futures is done and returns the done ones (futures need `result()`; `cancel()` is used when
    they have it)."""
    todo = iter(jobs)
    running: dict[F, J] = {}
    try:
        for job in todo:
            running[submit(job)] = job
            if len(running) >= window:
                break
        while running:
            for future in list(first_done(list(running))):
                job = running.pop(future)
                result = future.result()
                nxt = next(todo, None)
                if nxt is not None:
                    running[submit(nxt)] = nxt
                yield job, result
    finally:  # an error or an interrupt: stop what has not started (Prefect futures cannot cancel)
        for future in running:
            cancel = getattr(future, "cancel", None)
            if cancel is not None:
                cancel()
