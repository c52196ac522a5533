"""VLLMEngineBackend (vllm.LLM in-process) against transformers on the probe model. vLLM lives in
its own environment here, so the engine runs in a subprocess of that environment
(vllm_engine_job.py) and this test compares what it wrote."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from probe.agreement import agreement, generation_requests, score_cases, scoring_cases

pytestmark = [pytest.mark.vllm, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]


def test_engine_backend_agrees_with_transformers(vllm_env, probe_checkpoint, hf_backend, tmp_path):
    python = vllm_env
    out = tmp_path / "engine.json"
    env = {**os.environ, "PYTHONPATH": str(REPO), "VLLM_CPU_KVCACHE_SPACE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [str(python), str(Path(__file__).with_name("vllm_engine_job.py")), str(probe_checkpoint), str(out)],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(out.read_text())
    assert got["info"]["engine"] == "vllm-engine"

    cases = scoring_cases(hf_backend, n_variants=40, n_scenes=4)
    # Same requests: the engine tokenised answers exactly like transformers.
    for c, r in zip(cases, got["requests"], strict=True):
        assert list(c.request.answer_ids) == r["answer_ids"] and list(c.request.target_ids) == r["target_ids"]
    assert got["token_ids"] == {w: hf_backend.token_id(w) for w in ["Yes", "No", "star"]}

    result = agreement([np.array(s) for s in got["scores"]], score_cases(hf_backend, cases))
    assert result.n_images == 40 and result.image_agreement >= 0.99, result

    ref = hf_backend.generate(generation_requests(20, n_captions=4))
    same = [a["token_ids"] == list(b.token_ids) for a, b in zip(got["answers"], ref, strict=True)]
    assert np.mean(same) >= 0.95, [(a["text"], b.text) for a, b in zip(got["answers"], ref, strict=True)]
    for a, b, s in zip(got["answers"], ref, same, strict=True):
        if s and b.token_ids:
            np.testing.assert_allclose(a["logprobs"], b.logprobs, atol=1e-3)
            assert a["finish_reason"] == b.finish_reason
