"""The load step: where a run's data is, the benchmark's items, and which of them the run asks.

Everything benchmark-specific comes from the plug-in (`auditors.benchmarks`): `load` verifies the
data (a malformed line raises, naming file and line, before any model call) and returns the items
in the benchmark's order. An item is asked once and its answer is written for every sample it is
scored as (POPE: each (split, question id) where the (image, question) pair occurs); its
explanations are stored under its `item_id`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from audit.config import AuditConfig
from auditors.annotations import image_path
from auditors.benchmarks.base import BenchmarkData, DataSource, Item
from eagle.types import RGBImage

log = logging.getLogger(__name__)


class SampleError(Exception):
    """A sample that cannot be processed (a corrupt or missing image): recorded, not fatal."""


def prepare_data(config: AuditConfig) -> DataSource:
    """The run's data: the user's files, or the built-in probe world (written once per seed and size
    under the store; it is deterministic, so a resume finds the same bytes)."""
    if config.dataset == "repope":
        return config.source(world=None)
    from audit.probe_world import ensure_world

    return config.source(
        world=ensure_world(config.store / "datasets", seed=config.seed, n_images=config.probe_images)
    )


def load_items(config: AuditConfig, data: DataSource) -> tuple[Any, BenchmarkData, list[Item]]:
    """The benchmark plug-in, its loaded data, and the items this run asks (`--limit`)."""
    from auditors.benchmarks import get_benchmark

    benchmark = get_benchmark(config.benchmark)
    loaded = benchmark.load(data, config.splits)
    return benchmark, loaded, select_items(loaded.items, config.limit)


def select_items(items: Sequence[Item], limit: int | None) -> list[Item]:
    """The items a run asks: every item, or the first `limit` in the benchmark's order. Generic over
    benchmarks: items carry `split` and `label` for a sampler that stratifies."""
    return list(items) if limit is None else list(items[:limit])


def sample_order(items: Sequence[Item]) -> dict[str, tuple[int, int]]:
    """Sample id -> (item index, sample index): the run's order of answers rows, whatever order the
    store returns them in (marks, targets and bootstrap intervals depend on it)."""
    return {s.sample_id: (i, k) for i, item in enumerate(items) for k, s in enumerate(item.samples)}


def load_image(images: Path, name: str) -> RGBImage:
    """An RGB uint8 image (H, W, 3) of the data set; raises SampleError naming the file when it is
    missing, corrupt or refused by the image loader."""
    from eagle.images import load_rgb

    try:
        return load_rgb(image_path(images, name))
    except (OSError, ValueError) as exc:
        raise SampleError(f"cannot read image {name!r} in {images}: {exc}") from exc


def image_digest(images: Path, name: str) -> str:
    """sha256 of an image file ("missing" when it does not exist): part of an explanation's key."""
    from auditors.annotations import sha256_file

    path = image_path(images, name)
    return sha256_file(path) if path.is_file() else "missing"


def file_digest(path: Path | None) -> str | None:
    """sha256 of a data file (e.g. the ground truth the masks come from), None without one."""
    from auditors.annotations import sha256_file

    return sha256_file(path) if path is not None and path.is_file() else None


__all__ = [
    "DataSource",
    "Item",
    "SampleError",
    "file_digest",
    "image_digest",
    "load_image",
    "load_items",
    "prepare_data",
    "sample_order",
    "select_items",
]
