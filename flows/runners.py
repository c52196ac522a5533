"""Prefect's side of the audit's `Runner`: step jobs become Prefect tasks on the flow's task runner
(threads on this machine, or a Dask cluster), at most `window` in flight."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from audit.runner import windowed


class PrefectRunner:
    """Runs each step function through the Prefect task registered for it."""

    def __init__(self, tasks: dict[Callable[..., Any], Any]) -> None:
        self.tasks = tasks

    def map(
        self, fn: Callable[[Any], Any], jobs: Sequence[Any], *, name: str, window: int
    ) -> Iterator[tuple[Any, Any]]:
        task = self.tasks[fn]
        return windowed(task.submit, jobs, max(1, window), _first_done)


def _first_done(futures: Iterable[Any]) -> list[Any]:
    from prefect.futures import as_completed

    return [next(as_completed(list(futures)))]


def check_task_runner(spec: str) -> str:
    """Validate a `--task-runner` value without importing Prefect (its settings must be read after
    the CLI chose the API): returns the spec, or raises ValueError naming the fix."""
    import importlib.util

    if spec == "threads":
        return spec
    if spec == "dask" or spec.startswith("dask="):
        if importlib.util.find_spec("prefect_dask") is None:
            raise ValueError("--task-runner dask needs prefect-dask: pip install 'eagle-audit[dask]'")
        return spec
    raise ValueError(f"unknown --task-runner {spec!r}; use threads, dask or dask=ADDRESS")


def task_runner_for(spec: str, workers: int = 4) -> Any:
    """`threads` -> a thread pool of `workers`; `dask` -> a local Dask cluster (2 worker processes);
    `dask=ADDRESS` -> an existing scheduler (e.g. tcp://10.0.0.5:8786). Dask needs the `dask` extra:
    pip install 'eagle-audit[dask]'."""
    check_task_runner(spec)
    if spec == "threads":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=max(1, workers))
    from prefect_dask import DaskTaskRunner

    address = spec.partition("=")[2] or None
    if address:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(cluster_kwargs={"n_workers": 2, "threads_per_worker": 1, "processes": True})
