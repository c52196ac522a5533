"""`AuditConfig`: everything an audit run is parameterised by, validated before anything starts.

Two layers of checks, both cheap and both before any service (Prefect, a model, a server) starts:
construction checks values (`ConfigError` names the option and the fix), `check_inputs()` checks
the file system and the store (model and image directories, annotation files, run id). The CLI
turns a `ConfigError` into one `Error:` line with exit code 2.

This module imports no torch, transformers, Prefect or DuckDB, so validation stays fast.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from auditors.annotations import SPLITS
from auditors.benchmarks.base import SourceError
from eagle.search import DEFAULT_SEARCH
from eagle.search import SEARCH_NAMES as SEARCHES

DATASETS = ("probe", "repope")
BACKENDS = ("hf", "vllm-server", "vllm-engine")
PROBE_MODEL = "probe"  # the shipped probe checkpoint (the default model of the hf and vllm-engine backends)


class ConfigError(SourceError):
    """A setting that cannot work; the message names the option (`--name`) and what to do. (A
    benchmark's own input errors, `SourceError`, are the same kind of error.)"""


@dataclass(frozen=True, kw_only=True)
class AuditConfig:
    """One audit run. Paths may be relative; `store` is where every result (and the probe world)
    goes. `backend_options` are passed unchanged to the backend's constructor (timeouts,
    concurrency, dtype, ...); they are recorded in the run's config."""

    store: Path
    benchmark: str = "pope"  # a registered benchmark plug-in: "pope" | "captions" | ...
    dataset: str = "probe"  # "probe" (the built-in probe world) | "repope" (user's files)
    annotations: Path | None = None  # repope: directory with the POPE/RePOPE files
    images: Path | None = None  # repope: image directory (COCO val2014)
    instances: Path | None = None  # repope: COCO instances file (object ground truth and masks)
    splits: tuple[str, ...] = SPLITS
    limit: int | None = None  # a stratified sample of this many questions (per split and label)
    sample_seed: int = 0  # seed of the --limit sample (recorded in the run's sampling record)
    backend: str = "hf"
    model: str | None = None  # model directory (hf, vllm-engine) or served model name (vllm-server)
    endpoint: tuple[str, ...] = ()
    backend_options: Mapping[str, Any] = field(default_factory=dict)
    explain: str = "all"  # "all" | "none" | a number of hallucinations to explain
    regions: int = 64
    search: str = DEFAULT_SEARCH
    correction: bool = True
    seed: int = 0
    probe_images: int = 40  # size of the built-in probe world
    max_new_tokens: int | None = None  # answer length; None: the benchmark's default (pope 8, captions 64)
    batch_size: int = 32  # questions per generation call
    explain_concurrency: int = 1  # explanations in flight at once
    max_failed_share: float = 0.05  # a larger share of failed samples or explanations fails the run
    run_id: str | None = None
    report: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "store", Path(self.store))
        for name in ("annotations", "images", "instances"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, Path(value))
        object.__setattr__(self, "splits", tuple(self.splits))
        object.__setattr__(self, "endpoint", tuple(e for e in self.endpoint if e))
        object.__setattr__(self, "explain", str(self.explain))
        self._check_values()

    def _check_values(self) -> None:
        if self.dataset not in DATASETS:
            raise ConfigError(
                "--dataset", f"unknown dataset {self.dataset!r}; choose {' or '.join(DATASETS)}"
            )
        from auditors.benchmarks import get_benchmark

        try:
            benchmark = get_benchmark(self.benchmark)
        except KeyError as exc:
            raise ConfigError("--benchmark", str(exc.args[0])) from None
        if self.dataset == "repope":
            if self.images is None:
                raise ConfigError("--images", "--dataset repope needs --images DIR (e.g. COCO val2014)")
            try:
                benchmark.check(self.source(world=None))
            except SourceError as exc:
                raise ConfigError(exc.option, str(exc).split(": ", 1)[1]) from None
        elif self.instances is not None:
            raise ConfigError(
                "--instances", "--instances applies to --dataset repope (the probe world has its own masks)"
            )
        bad = [s for s in self.splits if s not in SPLITS]
        if bad or not self.splits:
            raise ConfigError(
                "--splits", f"unknown split(s) {', '.join(bad) or '(none)'}; choose from {', '.join(SPLITS)}"
            )
        if self.backend not in BACKENDS:
            raise ConfigError(
                "--backend", f"unknown backend {self.backend!r}; choose from {', '.join(BACKENDS)}"
            )
        if self.backend == "vllm-server" and not self.endpoint:
            raise ConfigError(
                "--endpoint",
                "--backend vllm-server needs --endpoint URL (e.g. http://127.0.0.1:8000; "
                "`eagle-audit serve probe` starts a local server)",
            )
        if self.backend != "vllm-server" and self.endpoint:
            raise ConfigError(
                "--endpoint", f"--endpoint only applies to --backend vllm-server, not {self.backend}"
            )
        for url in self.endpoint:
            if not url.startswith(("http://", "https://")):
                raise ConfigError(
                    "--endpoint", f"{url!r} is not an http(s) URL; give e.g. http://127.0.0.1:8000"
                )
        if self.explain not in ("all", "none") and not self.explain.isdigit():
            raise ConfigError("--explain", f"must be 'all', 'none' or a number, got {self.explain!r}")
        if self.search not in SEARCHES:
            raise ConfigError(
                "--search", f"unknown search {self.search!r}; choose from {', '.join(SEARCHES)}"
            )
        _positive("--limit", self.limit, allow_none=True)
        _positive("--regions", self.regions, minimum=2)
        _positive("--probe-images", self.probe_images)
        _positive("--max-new-tokens", self.max_new_tokens, allow_none=True)
        _positive("--batch-size", self.batch_size)
        _positive("--explain-concurrency", self.explain_concurrency)
        if not 0.0 <= self.max_failed_share <= 1.0:
            raise ConfigError("--max-failed-share", f"must be between 0 and 1, got {self.max_failed_share}")
        if self.run_id is not None:
            from storage.layout import check_run_id

            try:
                check_run_id(self.run_id)
            except ValueError as exc:
                raise ConfigError("--run-id", str(exc)) from None
        try:
            json.dumps(dict(self.backend_options))
        except TypeError as exc:
            raise ConfigError("backend options", f"must be JSON values ({exc})") from None

    @property
    def explain_limit(self) -> int | None:
        """How many hallucinations to explain: None means all."""
        return None if self.explain == "all" else 0 if self.explain == "none" else int(self.explain)

    @property
    def answer_tokens(self) -> int:
        """Tokens to generate per answer: --max-new-tokens, or the benchmark's default."""
        if self.max_new_tokens is not None:
            return self.max_new_tokens
        from auditors.benchmarks import get_benchmark

        return int(get_benchmark(self.benchmark).max_new_tokens)

    def source(self, world: Path | None) -> Any:
        """The run's `auditors.benchmarks.base.DataSource`: the user's files, or the probe world at
        `world` (its directory, written by `audit.probe_world.ensure_world`)."""
        from auditors.benchmarks.base import DataSource

        if self.dataset == "repope":
            assert self.images is not None
            return DataSource(
                name="repope", images=self.images, annotations=self.annotations, instances=self.instances
            )
        assert world is not None, "the probe world's directory is needed for --dataset probe"
        return DataSource(
            name="probe", images=world / "images", annotations=world, ground_truth=world / "ground_truth.json"
        )

    @property
    def uses_probe_model(self) -> bool:
        return self.backend != "vllm-server" and self.model in (None, PROBE_MODEL)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able copy (paths as text), recorded in the run's config."""
        out = asdict(self)
        out["backend_options"] = dict(self.backend_options)
        return {
            k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v)
            for k, v in out.items()
        }


def _positive(option: str, value: int | None, *, minimum: int = 1, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(option, f"must be an integer >= {minimum}, got {value!r}")


def check_inputs(config: AuditConfig) -> None:
    """Check what the run will read, cheaply (no model, no server, no Prefect): the model
    directory, the annotation and image directories, the store, and the run id (a complete run
    cannot be resumed). Raises ConfigError naming the option."""
    if config.backend != "vllm-server" and not config.uses_probe_model:
        model = Path(str(config.model)).expanduser()
        if not model.is_dir():
            raise ConfigError(
                "--model",
                f"model directory {str(model)!r} does not exist; pass a checkpoint directory "
                "(or omit --model for the shipped probe model)",
            )
        if not (model / "config.json").is_file():
            raise ConfigError(
                "--model", f"{str(model)!r} has no config.json: it is not a transformers checkpoint directory"
            )
    if config.dataset == "repope":
        assert config.images is not None
        if config.annotations is not None and not config.annotations.is_dir():
            raise ConfigError(
                "--annotations",
                f"annotation directory {str(config.annotations)!r} does not exist; "
                "`eagle-audit pope fetch --out DIR` downloads the POPE/RePOPE files",
            )
        if config.instances is not None and not config.instances.is_file():
            raise ConfigError(
                "--instances",
                f"instances file {str(config.instances)!r} does not exist; pass COCO's "
                "annotations/instances_val2014.json",
            )
        if not config.images.is_dir():
            raise ConfigError(
                "--images",
                f"image directory {str(config.images)!r} does not exist; "
                "pass the folder that holds the annotation files' images (e.g. COCO val2014)",
            )
    store = config.store
    if store.exists() and not store.is_dir():
        raise ConfigError("--store", f"{str(store)!r} exists and is not a directory; pass a store directory")
    if config.run_id is not None:
        status = _stored_status(store, config.run_id)
        if status == "complete":
            raise ConfigError(
                "--run-id",
                f"run {config.run_id!r} is already complete in {store}; "
                "drop --run-id to start a new run (or pass a new id)",
            )


def _stored_status(store: Path, run_id: str) -> str | None:
    """The stored status of `run_id`, None when the store or the run does not exist yet."""
    if not (store / "runs").is_dir():
        return None
    from storage.store import Store

    return Store(store, create=False).run_status(run_id)
