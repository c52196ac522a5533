"""Run VLLMEngineBackend on a probe checkpoint inside the vLLM environment and write what it
produced as JSON, for test_vllm_engine_backend.py to compare with in-process transformers.

Usage (from the repository root, with the vLLM venv's python):
    PYTHONPATH=. .venv-vllm/bin/python tests/backends/vllm_engine_job.py MODEL_DIR OUT.json
"""

from __future__ import annotations

import json
import sys


def main(model: str, out: str) -> None:
    from eagle.backends.vllm_engine import VLLMEngineBackend
    from probe.agreement import generation_requests, score_cases, scoring_cases

    backend = VLLMEngineBackend(model=model, max_model_len=512)
    cases = scoring_cases(backend, n_variants=40, n_scenes=4)
    scores = score_cases(backend, cases)
    answers = backend.generate(generation_requests(20, n_captions=4))
    result = {
        "info": backend.info(),
        "requests": [
            {"answer_ids": c.request.answer_ids, "target_positions": c.request.target_positions,
             "target_ids": c.request.target_ids} for c in cases
        ],
        "scores": [s.tolist() for s in scores],
        "answers": [{"token_ids": a.token_ids, "logprobs": a.logprobs, "text": a.text,
                     "finish_reason": a.finish_reason} for a in answers],
        "token_ids": {w: backend.token_id(w) for w in ["Yes", "No", "star"]},
    }  # fmt: skip
    with open(out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":  # vLLM on CPU spawns workers: the guard is required
    main(sys.argv[1], sys.argv[2])
