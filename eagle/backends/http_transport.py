"""The HTTP transport of the server backend: JSON requests with bounded concurrency, timeouts,
retries with backoff and endpoint rotation, driven from synchronous code through a private
event-loop thread. It knows HTTP and JSON, not vLLM: `openai_server` speaks the vLLM dialect over it.

Every wait is bounded: `connect_timeout_s` to open a connection, `timeout_s` for one attempt
(request sent, whole body read), `deadline_s` for one request over all its attempts and backoff
sleeps, and a body may hold at most `max_response_bytes` (after decompression). This is the only
place requests are retried; callers (flows, tasks) must not retry on top of it.
"""

from __future__ import annotations

import asyncio
import atexit
import itertools
import json
import logging
import random
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from eagle.backends.errors import (
    BackendError,
    BadResponseError,
    EndpointTimeoutError,
    EndpointUnavailableError,
    ModelNotServedError,
    RequestRejectedError,
    ResponseTooLargeError,
)

log = logging.getLogger(__name__)

API_KEY_ENVS = ("EAGLE_AUDIT_API_KEY", "VLLM_API_KEY")
RETRY_STATUS = {408, 429, 500, 502, 503, 504}
# Per-attempt limit (connect, send, whole answer), connection limit, and extra attempts after a
# transient failure: a server that never answers costs at most (4 + 1) x 120 s plus backoff.
DEFAULT_TIMEOUT_S = 120.0
DEFAULT_CONNECT_TIMEOUT_S = 10.0
DEFAULT_MAX_RETRIES = 4
# Largest response body accepted. Real ones are far smaller: prompt_logprobs of a 4k-token prompt
# with an image are ~1 MB of JSON.
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024


def parse_endpoints(endpoint: str | Sequence[str]) -> list[str]:
    """Comma-separated (or listed) server URLs -> base URLs without a trailing `/v1` or `/`."""
    items = endpoint.split(",") if isinstance(endpoint, str) else list(endpoint)
    urls = []
    for raw in items:
        url = raw.strip().rstrip("/")
        if not url:
            continue
        if url.endswith("/v1"):
            url = url[: -len("/v1")]
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"endpoint {raw!r} is not an http(s) URL: give e.g. http://127.0.0.1:8000")
        urls.append(url)
    if not urls:
        raise ValueError(f"no endpoint in {endpoint!r}: give one or more comma-separated URLs")
    return urls


@dataclass(frozen=True)
class _Response:
    """What the transport keeps of an HTTP response: status, reason and the whole body."""

    status_code: int
    reason_phrase: str
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


# Transports not closed yet, closed at interpreter exit while their loop threads still run: later
# (from __del__ during finalisation) the daemon thread is frozen, close() waits out its timeout and
# aiohttp prints "Unclosed client session" after the CLI's last line.
_OPEN: weakref.WeakSet[Transport] = weakref.WeakSet()


@atexit.register
def _close_open_transports() -> None:
    for transport in list(_OPEN):
        transport.close()


class Transport:
    """JSON POST/GET with bounded concurrency, timeouts, a deadline per request, retries and endpoint
    rotation, driven from synchronous code through a private event-loop thread."""

    def __init__(
        self,
        endpoints: list[str],
        *,
        api_key: str | None,
        concurrency: int,
        timeout_s: float,
        connect_timeout_s: float,
        max_retries: int,
        backoff_s: float,
        max_backoff_s: float,
        deadline_s: float | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        for name, value in (("timeout", timeout_s), ("connect timeout", connect_timeout_s)):
            if not value > 0:
                raise ValueError(f"the {name} must be a positive number of seconds, got {value}")
        if deadline_s is not None and not deadline_s > 0:
            raise ValueError(f"the deadline must be a positive number of seconds (or None), got {deadline_s}")
        if max_response_bytes < 1:
            raise ValueError(f"max_response_bytes must be >= 1, got {max_response_bytes}")
        self.endpoints = endpoints
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.deadline_s = deadline_s
        self.max_response_bytes = max_response_bytes
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._rr = itertools.count()
        self._rng = random.Random()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="vllm-client", daemon=True)
        self._thread.start()
        self._client: Any = None
        self._sem: asyncio.Semaphore | None = None
        _OPEN.add(self)
        self.attempts = 0  # total HTTP attempts (for tests and logs)
        self.retries = 0

    def run(self, coro: Awaitable[Any]) -> Any:
        """Run a coroutine on the private loop and wait for it (bounded by the retry policy)."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("VLLMServerBackend called from its own event loop thread")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)  # type: ignore[arg-type]
        try:
            return future.result()
        except BaseException:
            future.cancel()  # Ctrl-C or an error: stop the requests still in flight
            raise

    async def _setup(self) -> None:
        if self._client is None:
            import aiohttp

            # aiohttp rather than httpx: at 32 requests in flight httpx's connection pool costs
            # ~3 ms of client CPU per request (it polls every pooled socket on each request),
            # aiohttp ~1 ms; on a small box the client shares the CPUs with the server.
            connector = aiohttp.TCPConnector(limit=self.concurrency, limit_per_host=0)
            self._client = aiohttp.ClientSession(
                connector=connector, headers=self._headers, raise_for_status=False
            )
            self._sem = asyncio.Semaphore(self.concurrency)

    def _delay(self, attempt: int) -> float:
        # Exponential backoff with "equal jitter": half fixed, half random, so replicas that failed
        # together do not all retry in the same instant.
        cap = min(self.max_backoff_s, self.backoff_s * 2**attempt)
        return cap / 2 + self._rng.uniform(0, cap / 2)

    async def request(
        self,
        method: str,
        path: str,
        body: dict | None = None,
        *,
        parse: Callable[[Any, str], Any] | None = None,
        endpoint: str | None = None,
    ) -> Any:
        """Send one request, retrying transient failures; returns `parse(json, endpoint)` (or the JSON).

        `parse` raising BadResponseError counts as a transient failure (a truncated or garbled
        body); any other BackendError from it is final. `endpoint` pins one server (no rotation).
        """
        import aiohttp

        await self._setup()
        assert self._sem is not None
        start = next(self._rr)
        attempts = self.max_retries + 1
        last: BaseException | None = None
        last_url = ""
        deadline_at: float | None = None  # set when the first attempt starts (not while queued)
        out_of_time = False
        for attempt in range(attempts):
            base = endpoint or self.endpoints[(start + attempt) % len(self.endpoints)]
            url = base + path
            if attempt:
                delay = self._delay(attempt - 1)
                if deadline_at is not None and time.monotonic() + delay >= deadline_at:
                    out_of_time = True
                    break
                self.retries += 1
                log.warning("retrying %s in %.2fs after: %s", url, delay, last)
                await asyncio.sleep(delay)
            last_url = base
            async with self._sem:
                now = time.monotonic()
                if deadline_at is None and self.deadline_s is not None:
                    deadline_at = now + self.deadline_s
                budget = self.timeout_s if deadline_at is None else min(self.timeout_s, deadline_at - now)
                if budget <= 0:
                    out_of_time = True
                    break
                # `total` bounds the whole attempt, response body included, so a server trickling
                # bytes cannot hold a request; `sock_connect` bounds opening the connection.
                timeout = aiohttp.ClientTimeout(
                    total=budget, sock_connect=min(self.connect_timeout_s, budget)
                )
                self.attempts += 1
                try:
                    async with self._client.request(method, url, json=body, timeout=timeout) as r:
                        resp = _Response(r.status, r.reason or "", await self._read_body(r, base, path))
                except aiohttp.ConnectionTimeoutError as e:
                    last = EndpointTimeoutError(
                        f"could not connect to the vLLM server at {base} within "
                        f"{min(self.connect_timeout_s, budget):.3g}s (attempt {attempt + 1} of {attempts}); "
                        "check --endpoint and that the host is reachable",
                        endpoint=base,
                    )
                    last.__cause__ = e
                    continue
                except TimeoutError as e:  # aiohttp's other timeouts subclass it
                    last = EndpointTimeoutError(
                        f"vLLM server at {base} did not answer {method} {path} within {budget:.3g}s "
                        f"(attempt {attempt + 1} of {attempts}); check the server and its load, "
                        "or raise --timeout (per request) or --deadline (per call, retries included)",
                        endpoint=base,
                    )
                    last.__cause__ = e
                    continue
                except (aiohttp.ClientError, OSError) as e:
                    last = EndpointUnavailableError(
                        f"cannot reach the vLLM server at {base} "
                        f"({type(e).__name__}: {e or 'connection failed'}) after {attempt + 1} attempt(s); "
                        "check --endpoint and that the server is running "
                        "(`eagle-audit serve probe` starts a local one)",
                        endpoint=base,
                    )
                    last.__cause__ = e
                    continue
            if resp.status_code != 200:
                err = self._status_error(resp, base, path)
                if resp.status_code in RETRY_STATUS:
                    last = err
                    continue
                raise err
            try:
                data = resp.json()
            except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as e:
                last = BadResponseError(
                    f"vLLM server at {base} answered {path} with a body that is not JSON "
                    f"({resp.text[:120]!r}); is --endpoint a vLLM server?",
                    endpoint=base,
                )
                last.__cause__ = e
                continue
            if parse is None:
                return data
            try:
                return parse(data, base)
            except BadResponseError as e:
                last = e
                continue
        assert last is not None  # the first attempt always runs: the deadline starts with it
        notes = []
        if out_of_time:
            notes.append(f"stopped at the --deadline of {self.deadline_s:g}s")
        if isinstance(last, BackendError) and last_url and len(self.endpoints) > 1:
            notes.append(f"endpoints tried in turn: {', '.join(self.endpoints)}")
        if notes:
            last.args = (f"{last.args[0]} [{'; '.join(notes)}]",)
        raise last

    async def _read_body(self, r: Any, base: str, path: str) -> bytes:
        """The whole body (decompressed), refused once it passes `max_response_bytes`."""
        cap = self.max_response_bytes

        def too_large(size: str) -> ResponseTooLargeError:
            return ResponseTooLargeError(
                f"vLLM server at {base} answered {path} with {size}, over the response cap of {cap} bytes; "
                "is --endpoint a vLLM server? (raise max_response_bytes if such answers are expected)",
                endpoint=base,
            )

        if r.content_length is not None and r.content_length > cap:
            raise too_large(f"a body of {r.content_length} bytes")
        chunks, size = [], 0
        async for chunk in r.content.iter_chunked(1 << 16):
            size += len(chunk)
            if size > cap:
                raise too_large(f"more than {cap} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    @staticmethod
    def _status_error(resp: _Response, base: str, path: str) -> BackendError:
        try:
            detail = resp.json().get("error", {})
            message = detail.get("message") if isinstance(detail, dict) else str(detail)
        except (ValueError, AttributeError):
            message = None
        message = message or resp.text[:200] or resp.reason_phrase
        code = resp.status_code
        if code == 404 and "does not exist" in message:
            return ModelNotServedError(
                f"vLLM server at {base}: {message} Pass --model with a served name", endpoint=base
            )
        if code in (401, 403):
            return RequestRejectedError(
                f"vLLM server at {base} refused {path} ({code}: {message}); set the API key in "
                f"${API_KEY_ENVS[0]} (or pass --api-key)",
                endpoint=base,
            )
        if code in RETRY_STATUS:
            return BackendError(f"vLLM server at {base} failed {path} with {code}: {message}", endpoint=base)
        return RequestRejectedError(
            f"vLLM server at {base} rejected {path} ({code}): {message}", endpoint=base
        )

    async def gather(self, coros: Sequence[Awaitable[Any]]) -> list[Any]:
        """Run coroutines concurrently; on the first failure cancel the rest and raise it."""
        tasks: list[asyncio.Task] = []
        try:
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(c) for c in coros]  # type: ignore[arg-type]
        except BaseExceptionGroup as eg:
            first = eg.exceptions[0]
            while isinstance(first, BaseExceptionGroup):
                first = first.exceptions[0]
            raise first from None
        return [t.result() for t in tasks]

    def close(self) -> None:
        _OPEN.discard(self)
        if self._loop.is_closed():
            return

        async def _close() -> None:
            if self._client is not None:
                await self._client.close()

        try:
            asyncio.run_coroutine_threadsafe(_close(), self._loop).result(timeout=10)
        except Exception:  # noqa: BLE001 - closing must not raise
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
