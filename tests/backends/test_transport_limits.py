"""Every wait on a server is bounded: connect timeout, per-attempt timeout, a deadline per request
over all its retries, and a cap on response bodies. Real sockets, misbehaving servers."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hostile_servers import BodyServer, FullBacklogServer, SilentServer
from vllm_fake_server import FakeVLLM

from eagle.backends.errors import EndpointTimeoutError, ResponseTooLargeError
from eagle.backends.http_transport import DEFAULT_MAX_RESPONSE_BYTES, Transport
from eagle.backends.openai_server import VLLMServerBackend
from eagle.types import GenerationRequest, ScoreRequest

MARGIN_S = 1.5  # event-loop start, backoff sleeps (<= 0.05 s each here), a loaded machine


def backend(url: str, **kw) -> VLLMServerBackend:
    kw.setdefault("model", "fake")
    kw.setdefault("backoff_s", 0.01)
    kw.setdefault("max_backoff_s", 0.05)
    return VLLMServerBackend(endpoint=url, **kw)


def images(n: int) -> np.ndarray:
    return np.full((n, 8, 8, 3), 128, np.uint8)


def test_a_server_that_never_answers_ends_within_timeout_times_attempts():
    with SilentServer() as srv, backend(srv.url, timeout_s=0.5, max_retries=2) as b:
        t0 = time.monotonic()
        with pytest.raises(EndpointTimeoutError) as e:
            _ = b.model_id  # the model lookup is the first call an audit makes
        took = time.monotonic() - t0
    assert 3 * 0.5 <= took < 3 * 0.5 + MARGIN_S
    message = str(e.value)
    assert srv.url in message and "within 0.5s (attempt 3 of 3)" in message
    assert "--timeout" in message and "--deadline" in message and "\n" not in message
    assert len(srv.requests) == 3 and all(r.startswith("GET /v1/models") for r in srv.requests)


def test_the_deadline_bounds_a_request_over_all_its_retries():
    with SilentServer() as srv, backend(srv.url, timeout_s=30, max_retries=4, deadline_s=1.0) as b:
        t0 = time.monotonic()
        with pytest.raises(EndpointTimeoutError, match=r"within 1s \(attempt 1 of 5\)") as e:
            _ = b.model_id
        took = time.monotonic() - t0
    assert 1.0 <= took < 1.0 + MARGIN_S
    assert "stopped at the --deadline of 1s" in str(e.value)


def test_a_server_that_hangs_only_on_generation_is_bounded_too():
    with SilentServer(answer_models=True) as srv, backend(srv.url, timeout_s=0.4, max_retries=1) as b:
        assert b.model_id == "fake"  # the lookup is answered
        t0 = time.monotonic()
        with pytest.raises(EndpointTimeoutError, match=r"did not answer POST /v1/chat/completions"):
            b.generate([GenerationRequest(image=im, prompt="Q") for im in images(3)])
        took = time.monotonic() - t0
    # requests run concurrently, so the call takes one request's bound, not three
    assert 2 * 0.4 <= took < 2 * 0.4 + MARGIN_S


def test_the_deadline_starts_when_a_request_starts_not_while_it_waits_for_a_slot():
    # 6 requests, one in flight at a time, 0.25 s each: the last waits ~1.25 s for its slot, more
    # than its 0.6 s deadline, and must still succeed
    with FakeVLLM(delay_s=0.25) as srv, backend(srv.url, concurrency=1, deadline_s=0.6, timeout_s=5) as b:
        got = b.score(images(3), ScoreRequest(prompt="Q", answer_ids=(32, 89), target_positions=(1, 1),
                                              target_ids=(89, 78)))  # fmt: skip
        assert srv.chat_requests == 6 and b._t.retries == 0
    assert got.shape == (3, 2)


def test_connecting_has_its_own_timeout():
    with FullBacklogServer() as srv:
        t = Transport([srv.url], api_key=None, concurrency=1, timeout_s=30, connect_timeout_s=0.5,
                      max_retries=0, backoff_s=0.01, max_backoff_s=0.01)  # fmt: skip
        t0 = time.monotonic()
        with pytest.raises(EndpointTimeoutError, match=r"could not connect to .* within 0\.5s \(attempt 1"):
            t.run(t.request("GET", "/v1/models"))
        took = time.monotonic() - t0
        t.close()
    assert 0.5 <= took < 0.5 + MARGIN_S  # the connect timeout, not the 30 s per-request one


@pytest.mark.parametrize("mode", ["sized", "chunked", "gzip"])
def test_response_bodies_are_capped_and_not_retried(mode):
    huge = json.dumps({"data": [{"id": "x" * 1000}] * 3000}).encode()  # ~3 MB, ~10 KB gzipped
    with BodyServer(huge, mode=mode) as srv:
        t = Transport([srv.url], api_key=None, concurrency=1, timeout_s=10, connect_timeout_s=2,
                      max_retries=3, backoff_s=0.01, max_backoff_s=0.01,
                      max_response_bytes=1_000_000)  # fmt: skip
        with pytest.raises(ResponseTooLargeError, match="over the response cap of 1000000 bytes") as e:
            t.run(t.request("GET", "/v1/models"))
        assert srv.requests == 1 and srv.url in str(e.value)  # the same answer would come again
        t.close()
        ok = Transport([srv.url], api_key=None, concurrency=1, timeout_s=10, connect_timeout_s=2,
                       max_retries=0, backoff_s=0.01, max_backoff_s=0.01)  # fmt: skip
        assert len(ok.run(ok.request("GET", "/v1/models"))["data"]) == 3000  # under the default cap
        ok.close()
    assert DEFAULT_MAX_RESPONSE_BYTES == 64 * 1024 * 1024


def test_limits_are_checked():
    common = {"api_key": None, "concurrency": 1, "max_retries": 0, "backoff_s": 0.1, "max_backoff_s": 1}
    for bad, match in (
        ({"timeout_s": 0, "connect_timeout_s": 1}, "timeout must be a positive"),
        ({"timeout_s": 1, "connect_timeout_s": -1}, "connect timeout must be a positive"),
        ({"timeout_s": 1, "connect_timeout_s": 1, "deadline_s": 0}, "deadline must be a positive"),
        ({"timeout_s": 1, "connect_timeout_s": 1, "max_response_bytes": 0}, "max_response_bytes"),
    ):
        with pytest.raises(ValueError, match=match):
            Transport(["http://127.0.0.1:1"], **common, **bad)


def test_an_open_transport_is_closed_promptly_at_exit():
    """A process that ends with a backend still open (an error on the way out) exits at once and
    quietly: the transport closes at exit while its loop thread still runs."""
    code = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from vllm_fake_server import FakeVLLM\n"
        "from eagle.backends.openai_server import VLLMServerBackend\n"
        "srv = FakeVLLM().start()\n"
        "b = VLLMServerBackend(model='fake', endpoint=srv.url)\n"
        "assert b.model_id == 'fake'\n"
        "import asyncio, logging; logging.basicConfig(level=logging.DEBUG)\n"
        "import time; print(time.time(), flush=True)\n"
        "raise SystemExit(3)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    exiting_took = time.time() - float(out.stdout)
    assert out.returncode == 3, out.stderr
    assert "Unclosed client session" not in out.stderr
    assert exiting_took < 5  # closing from __del__ at finalisation waited 10 s for a frozen thread
