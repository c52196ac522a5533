"""The run record: what is needed to reproduce a run (model and weights digest, engine, decoding,
seed, data checksums, code version, the whole config) and what it asked (the question-set
fingerprint and how the questions were sampled)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from audit.config import AuditConfig
from audit.data import question_set
from audit.sampling import Sampling
from auditors.benchmarks.base import BenchmarkData, DataSource, Item
from storage.store import RunRecord


def run_record(
    config: AuditConfig,
    data: DataSource,
    loaded: BenchmarkData,
    items: Sequence[Item],
    sampling: Sampling,
    *,
    model_id: str,
    weights_digest: str | None,
    backend_info: dict[str, Any],
) -> RunRecord:
    from importlib.metadata import version

    if config.backend == "hf":
        import transformers

        engine = f"transformers {transformers.__version__}"
    else:  # what the engine says of itself, e.g. "vllm 0.32.0"
        engine = f"vllm {backend_info.get('engine_version') or 'version unknown'}"
    checksums = dict(loaded.checksums)
    benchmark = f"{data.name}-{config.benchmark}"
    return RunRecord(
        run_id=config.run_id,
        model_id=model_id,
        model_revision=weights_digest
        if config.backend != "vllm-server"
        else backend_info.get("model_revision"),
        backend=config.backend,
        engine_version=engine,
        decoding={"temperature": 0.0, "max_new_tokens": config.answer_tokens, "greedy": True},
        seed=config.seed,
        data_checksums=checksums,
        code_version=f"eagle-audit {version('eagle-audit')}",
        benchmark=benchmark,
        config=config.to_json() | {"image_root": str(data.images.resolve()), "backend_info": backend_info},
        question_set=question_set(benchmark, items, checksums),
        sampling=sampling.to_json(),
    )
