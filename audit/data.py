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
from dataclasses import replace
from pathlib import Path
from typing import Any

from audit.config import AuditConfig
from audit.sampling import Sampling, stratified_sample
from auditors.annotations import image_path
from auditors.benchmarks.base import BenchmarkData, DataSource, Item, SampleRef
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


def load_items(config: AuditConfig, data: DataSource) -> tuple[Any, BenchmarkData, list[Item], Sampling]:
    """The benchmark plug-in, its loaded data, the items this run asks (`--limit`: a seeded
    stratified sample) and how they were chosen (recorded in the run)."""
    from auditors.benchmarks import get_benchmark

    benchmark = get_benchmark(config.benchmark)
    loaded = benchmark.load(data, config.splits)
    items, sampling = select_items(loaded.items, config.limit, seed=config.sample_seed)
    return benchmark, loaded, items, sampling


def select_items(items: Sequence[Item], limit: int | None, *, seed: int = 0) -> tuple[list[Item], Sampling]:
    """The items a run asks: every item, or `limit` questions (samples) drawn by `audit.sampling`,
    each stratum (the split and the sample's label under every label set) keeping its share. Generic
    over benchmarks. An item is asked when any of its samples is chosen, and scored as those only;
    its explanations go under its first chosen sample."""
    label_sets = sorted({ls for item in items for s in item.samples for ls in s.labels})
    flat = [(i, s) for i, item in enumerate(items) for s in item.samples]
    # ordered by question id within each stratum (a stable sort: items without ids keep their order)
    flat.sort(key=lambda p: -1 if p[1].question_id is None else p[1].question_id)

    def stratum(p: tuple[int, SampleRef]) -> tuple[str, ...]:
        return (p[1].split or "-", *(p[1].labels.get(ls, "-") for ls in label_sets))

    chosen, sampling = stratified_sample(
        flat, limit, seed=seed, stratum=stratum, strata=("split", *(f"{ls}_label" for ls in label_sets))
    )
    keep = {(i, s.sample_id) for i, s in chosen}
    out = []
    for i, item in enumerate(items):
        samples = tuple(s for s in item.samples if (i, s.sample_id) in keep)
        if len(samples) == len(item.samples):
            out.append(item)
        elif samples:
            out.append(replace(item, samples=samples, item_id=samples[0].sample_id, split=samples[0].split))
    return out, sampling


def sample_order(items: Sequence[Item]) -> dict[str, tuple[int, int]]:
    """Sample id -> (item index, sample index): the run's order of answers rows, whatever order the
    store returns them in (marks, targets and bootstrap intervals depend on it)."""
    return {s.sample_id: (i, k) for i, item in enumerate(items) for k, s in enumerate(item.samples)}


def question_set(benchmark: str, items: Sequence[Item], data_checksums: dict[str, str]) -> str:
    """The fingerprint of the questions a run asks (`storage.verdicts.question_set_fingerprint`):
    equal for two runs exactly when they answer the same questions against the same label files."""
    from storage.verdicts import question_set_fingerprint

    questions = [(s.split or "-", s.sample_id) for item in items for s in item.samples]
    return question_set_fingerprint(benchmark, questions, data_checksums)


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
    "question_set",
    "sample_order",
    "select_items",
]
