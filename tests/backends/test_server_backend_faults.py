"""VLLMServerBackend against fake vLLM servers on real sockets: exact scores, batching, concurrency
bound, endpoint rotation, and every failure mode giving a clear error or a successful retry --
never a hang, never a silent wrong score."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from vllm_fake_server import EOS_ID, FakeVLLM, brightness, prob

from eagle.backends import build_backend
from eagle.backends.errors import (
    BackendError,
    BadResponseError,
    EndpointTimeoutError,
    EndpointUnavailableError,
    ModelNotServedError,
    PromptMismatchError,
    RequestRejectedError,
    TokenBoundaryError,
)
from eagle.backends.http_transport import parse_endpoints
from eagle.backends.openai_server import VLLMServerBackend
from eagle.backends.serving import free_port
from eagle.backends.teacher_forcing import plan_variants
from eagle.types import GenerationRequest, ScoreRequest

Q = "Is there a star in the image?"
YES = (32, 89, 101, 115)  # " Yes" in the fake's character tokenizer


def images(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (n, 1, 1, 1))
    noise = rng.integers(0, 16, (n, 12, 10, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)  # (n, 12, 10, 3), distinct brightness


def expected(imgs: np.ndarray, request: ScoreRequest) -> np.ndarray:
    return np.array([[prob(t, brightness(im)) for t in request.target_ids] for im in imgs])


def backend(url: str, **kw) -> VLLMServerBackend:
    kw.setdefault("model", "fake")
    kw.setdefault("backoff_s", 0.01)
    kw.setdefault("max_backoff_s", 0.05)
    kw.setdefault("timeout_s", 10)
    return VLLMServerBackend(endpoint=url, **kw)


REQUEST = ScoreRequest(
    prompt=Q,
    answer_ids=YES,
    # answer tokens at 1 and 3, a counter token at 1 ("N"), and one after the answer ("!")
    target_positions=(1, 3, 1, 4),
    target_ids=(89, 115, 78, 33),
)


@pytest.fixture
def fake():
    with FakeVLLM() as srv:
        yield srv


def test_scores_follow_the_servers_rule_for_answer_and_counter_tokens(fake):
    imgs = images(5)
    with backend(fake.url) as b:
        got = b.score(imgs, REQUEST)
        # one request per image for the answer tokens, one per image for each counter token
        assert fake.chat_requests == 5 * 3
    assert got.shape == (5, 4) and got.dtype == np.float64
    np.testing.assert_allclose(got, expected(imgs, REQUEST), rtol=1e-12)


@pytest.mark.parametrize("batch", [1, 2, 3, 7])
def test_batch_size_never_changes_scores(fake, batch):
    imgs = images(7, seed=1)
    with backend(fake.url, concurrency=3) as b:
        whole = b.score(imgs, REQUEST)
        parts = np.concatenate([b.score(imgs[i : i + batch], REQUEST) for i in range(0, 7, batch)])
    np.testing.assert_array_equal(parts, whole)


def test_tokenisation_goes_through_the_server(fake):
    with backend(fake.url) as b:
        assert b.answer_token_ids(Q, "Yes") == YES  # the template's space belongs to the answer
        assert b.decode(YES) == " Yes"
        with pytest.raises(ValueError, match=r"'!' is 2 tokens \[32, 33\]"):
            b.token_id("!")  # the fake tokenises by character: " !" after the template's space


def test_generate_strips_eos_and_keeps_order(fake):
    imgs = np.stack([np.full((8, 8, 3), 250, np.uint8), np.full((8, 8, 3), 10, np.uint8)])
    reqs = [GenerationRequest(image=im, prompt=Q, request_id=str(i)) for i, im in enumerate(imgs)]
    with backend(fake.url) as b:
        answers = b.generate(reqs)
    assert [a.text for a in answers] == [" Yes", " No"]
    assert [a.request_id for a in answers] == ["0", "1"]
    assert answers[0].token_ids == YES and EOS_ID not in answers[1].token_ids
    assert answers[0].finish_reason == "stop"
    np.testing.assert_allclose(np.exp(answers[0].logprobs), [prob(t, brightness(imgs[0])) for t in YES])


def test_concurrency_is_bounded_and_used():
    with FakeVLLM(delay_s=0.05) as srv, backend(srv.url, concurrency=4) as b:
        b.score(images(16), REQUEST)
    assert 2 <= srv.max_in_flight <= 4


def test_requests_rotate_over_endpoints():
    with FakeVLLM() as a, FakeVLLM() as c, backend(f"{a.url},{c.url}/v1/") as b:
        got = b.score(images(8), REQUEST)
    assert a.chat_requests > 0 and c.chat_requests > 0
    np.testing.assert_allclose(got, expected(images(8), REQUEST), rtol=1e-12)


def test_server_absent_names_the_endpoint():
    url = f"http://127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    with backend(url, max_retries=2) as b, pytest.raises(EndpointUnavailableError, match="cannot reach") as e:
        b.score(images(2), REQUEST)
    assert url in str(e.value) and e.value.endpoint == url
    assert time.monotonic() - t0 < 30  # bounded by the retry policy, no hang


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_transient_errors_are_retried_then_succeed(status):
    with FakeVLLM(fail_first=3, fail_status=status) as srv, backend(srv.url, max_retries=4) as b:
        got = b.score(images(3), REQUEST)
        assert b._t.retries == 3
    np.testing.assert_allclose(got, expected(images(3), REQUEST), rtol=1e-12)


def test_persistent_500_gives_an_error_not_a_score():
    with FakeVLLM(fail_first=10**6) as srv, backend(srv.url, max_retries=2) as b:
        with pytest.raises(BackendError, match=r"500: injected failure") as e:
            b.score(images(2), REQUEST)
    assert srv.url in str(e.value)


def test_client_errors_are_not_retried():
    one = ScoreRequest(prompt=Q, answer_ids=YES, target_positions=(1,), target_ids=(89,))
    with FakeVLLM(fail_first=1, fail_status=400) as srv, backend(srv.url) as b:
        with pytest.raises(RequestRejectedError, match="rejected"):
            b.score(images(1), one)
        assert srv.chat_requests == 1


def test_unauthorised_points_at_the_api_key_variable():
    with FakeVLLM(fail_first=1, fail_status=401) as srv, backend(srv.url) as b:
        with pytest.raises(RequestRejectedError, match="EAGLE_AUDIT_API_KEY"):
            b.score(images(1), REQUEST)


def test_malformed_json_is_retried_then_succeeds():
    with FakeVLLM(malformed_first=2) as srv, backend(srv.url, max_retries=3) as b:
        got = b.score(images(2), REQUEST)
    np.testing.assert_allclose(got, expected(images(2), REQUEST), rtol=1e-12)


def test_persistent_malformed_json_is_an_error():
    with FakeVLLM(malformed_first=10**6) as srv, backend(srv.url, max_retries=1) as b:
        with pytest.raises(BadResponseError, match="not JSON"):
            b.score(images(1), REQUEST)


def test_slow_server_times_out_without_hanging():
    with FakeVLLM(delay_s=3.0) as srv, backend(srv.url, timeout_s=0.3, max_retries=1) as b:
        t0 = time.monotonic()
        with pytest.raises(EndpointTimeoutError, match=r"did not answer .* within") as e:
            b.score(images(1), REQUEST)
        assert time.monotonic() - t0 < 2.5
    assert srv.url in str(e.value)


def test_wrong_model_name_lists_the_served_ones(fake):
    with backend(fake.url, model="llava") as b, pytest.raises(ModelNotServedError) as e:
        b.score(images(1), REQUEST)
    assert "'llava'" in str(e.value) and "['fake']" in str(e.value) and fake.url in str(e.value)


def test_model_name_defaults_to_the_single_served_model(fake):
    with backend(fake.url, model=None) as b:
        assert b.model_id == "fake"


def test_boundary_mismatch_is_an_error(fake):
    with FakeVLLM(shift_tail=True) as srv, backend(srv.url) as b:
        with pytest.raises(TokenBoundaryError, match="does not end with the teacher-forced answer tokens"):
            b.score(images(1), REQUEST)


def test_a_prompt_the_server_scores_differently_from_its_tokenize_is_an_error():
    # The chat endpoint scores a BOS that /tokenize does not render: the scores would belong to
    # another prompt than the one tokenised, so the first score call of the prompt fails.
    with FakeVLLM(bos_on_chat=True) as srv, backend(srv.url) as b:
        with pytest.raises(PromptMismatchError, match=r"from position 0: scored \[1, 85"):
            b.score(images(2), REQUEST)


def test_the_prompt_check_runs_once_per_prompt_and_image_size(fake):
    with backend(fake.url) as b:
        b.score(images(3), REQUEST)
        chats, tokenizes = fake.chat_requests, fake.tokenize_requests
        assert len(b._checked_prompts) == len(plan_variants(REQUEST))  # one check per scored prompt
        b.score(images(3, seed=1), REQUEST)
        assert fake.chat_requests == 2 * chats and fake.tokenize_requests == tokenizes
        b.score(images(3)[:, :6], REQUEST)  # another image size: checked anew
        assert fake.tokenize_requests == tokenizes + len(plan_variants(REQUEST))


def test_answer_that_the_template_cannot_reproduce_is_an_error(fake):
    # "Yes" without its leading space: the template always inserts a space before the answer.
    request = ScoreRequest(prompt=Q, answer_ids=(89, 101, 115), target_positions=(0,), target_ids=(89,))
    with backend(fake.url) as b, pytest.raises(TokenBoundaryError, match="cannot place the answer tokens"):
        b.score(images(1), request)


def test_bad_endpoint_and_backend_names():
    with pytest.raises(ValueError, match="not an http"):
        parse_endpoints("localhost:8000")
    with pytest.raises(ValueError, match="Did you mean 'vllm-server'"):
        build_backend("vllm-serve")
    with pytest.raises(ValueError, match="only applies to --backend vllm-server"):
        build_backend("hf", endpoint="http://127.0.0.1:1")
    for name in ("hf", "vllm-engine"):  # the library has no default model; the CLI picks the probe
        with pytest.raises(ValueError, match=f"backend '{name}' needs a model"):
            build_backend(name)


def _spawn_fake(port: int, delay_s: float) -> subprocess.Popen:
    script = Path(__file__).with_name("vllm_fake_server.py")
    proc = subprocess.Popen(
        [sys.executable, str(script), "--port", str(port), "--delay-s", str(delay_s)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # connection resets while it is killed print tracebacks
        text=True,
    )
    assert proc.stdout is not None and "listening" in proc.stdout.readline()
    return proc


def _kill_after(proc: subprocess.Popen, seconds: float) -> threading.Thread:
    t = threading.Thread(target=lambda: (time.sleep(seconds), proc.kill()), daemon=True)
    t.start()
    return t


def test_server_killed_mid_run_gives_a_clear_error():
    port = free_port()
    proc = _spawn_fake(port, delay_s=0.05)
    try:
        with backend(f"http://127.0.0.1:{port}", concurrency=2, max_retries=2) as b:
            assert b.model_id == "fake"  # resolved while the server is up
            killer = _kill_after(proc, 0.5)
            t0 = time.monotonic()
            with pytest.raises((EndpointUnavailableError, EndpointTimeoutError), match=f"127.0.0.1:{port}"):
                b.score(images(200), REQUEST)  # ~5 s of work at 2 in flight
            assert time.monotonic() - t0 < 30
            killer.join()
    finally:
        proc.kill()
        proc.wait()


def test_replica_killed_mid_run_fails_over_to_the_other():
    port = free_port()
    proc = _spawn_fake(port, delay_s=0.02)
    try:
        with FakeVLLM(delay_s=0.02) as other:
            with backend(f"http://127.0.0.1:{port},{other.url}", concurrency=4, max_retries=3) as b:
                assert b.model_id == "fake"
                _kill_after(proc, 0.3)
                imgs = images(120)
                got = b.score(imgs, REQUEST)
                assert b._t.retries > 0
        np.testing.assert_allclose(got, expected(imgs, REQUEST), rtol=1e-12)
    finally:
        proc.kill()
        proc.wait()


def test_score_from_several_threads_shares_one_bound():
    from concurrent.futures import ThreadPoolExecutor

    imgs = images(12, seed=3)
    with FakeVLLM(delay_s=0.01) as srv, backend(srv.url, concurrency=3) as b:
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda i: b.score(imgs[i : i + 3], REQUEST), range(0, 12, 3)))
    np.testing.assert_allclose(np.concatenate(results), expected(imgs, REQUEST), rtol=1e-12)
    assert srv.max_in_flight <= 3
