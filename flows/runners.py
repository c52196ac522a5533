"""Task runners for the audit flow: threads on one machine, or a Dask cluster."""

from __future__ import annotations

from typing import Any


def task_runner_for(spec: str) -> Any:
    """`threads` -> ThreadPoolTaskRunner; `dask` -> a local Dask cluster; `dask=ADDRESS` -> an existing
    scheduler (e.g. tcp://10.0.0.5:8786)."""
    if spec == "threads":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=4)
    if spec == "dask" or spec.startswith("dask="):
        try:
            from prefect_dask import DaskTaskRunner
        except ImportError as exc:
            raise ValueError(
                "--task-runner dask needs prefect-dask: pip install 'eagle-audit[dask]'"
            ) from exc
        address = spec.partition("=")[2] or None
        if address:
            return DaskTaskRunner(address=address)
        return DaskTaskRunner(cluster_kwargs={"n_workers": 2, "threads_per_worker": 1, "processes": True})
    raise ValueError(f"unknown --task-runner {spec!r}; use threads, dask or dask=ADDRESS")
