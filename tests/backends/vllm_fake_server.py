"""A tiny stand-in for a vLLM OpenAI-compatible server, with injectable faults, on a real socket.

It speaks the subset VLLMServerBackend uses (/v1/models, /version, /tokenize, /detokenize,
/v1/chat/completions with prompt_logprobs / return_token_ids / continue_final_message) with a
character-level "tokenizer" (token id = code point; the image placeholder expands to 4 tokens of
id 1000) and a known scoring rule, so tests can assert exact probabilities:

    p(token t | image) = (0.1 + 0.8 * brightness) * (1 + t % 5) / 6,  brightness = mean pixel / 255

Faults (constructor / command-line options): the first `fail_first` chat requests answer
`fail_status`; the first `malformed_first` answer a non-JSON body; every chat request sleeps
`delay_s`; `shift_tail` makes the returned prompt ids disagree with the prompt's answer tokens;
`bos_on_chat` makes the chat endpoint score a BOS that /tokenize does not render.

Run as a subprocess: `python vllm_fake_server.py --port P [--delay-s 0.05]` (tests kill it).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import math
import re
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

IMAGE_ID = 1000
IMAGE_TOKENS = 4
EOS_ID = 2
BOS_ID = 1


def brightness(image: np.ndarray) -> float:
    return float(np.asarray(image, np.float64).mean() / 255.0)


def prob(token: int, b: float) -> float:
    return (0.1 + 0.8 * b) * (1 + token % 5) / 6


def tokenize(text: str) -> list[int]:
    ids: list[int] = []
    for piece in re.split(r"(<image>)", text):
        ids += [IMAGE_ID] if piece == "<image>" else [ord(c) for c in piece]
    return ids


def prompt_ids(text: str) -> list[int]:
    """The ids the model sees: the image placeholder expanded (as both /tokenize and chat do)."""
    ids: list[int] = []
    for t in tokenize(text):
        ids += [IMAGE_ID] * IMAGE_TOKENS if t == IMAGE_ID else [t]
    return ids


def detokenize(ids: list[int]) -> str:
    return "".join("<image>" if i == IMAGE_ID else ("</s>" if i == EOS_ID else chr(i)) for i in ids)


def render(messages: list[dict], add_generation_prompt: bool, continue_final: bool) -> tuple[str, list[str]]:
    """Chat template 'USER: <image>\\n{q} ASSISTANT: {a}</s>'; returns (text, image data URLs)."""
    text, urls = "", []
    for i, m in enumerate(messages):
        content = m["content"]
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if m["role"] == "system":
            text += "SYS: " + "".join(p["text"] for p in parts) + "\n"
        elif m["role"] == "user":
            text += "USER: "
            for p in parts:
                if p["type"] == "image_url":
                    text += "<image>\n"
                    urls.append(p["image_url"]["url"])
                else:
                    text += p["text"]
            text += " "
        else:
            body = "".join(p["text"] for p in parts)
            text += "ASSISTANT: " + body
            if not (continue_final and i == len(messages) - 1):
                text += "</s>"
    if add_generation_prompt:
        text += "ASSISTANT:"
    return text, urls


def decode_image(url: str) -> np.ndarray:
    from PIL import Image

    data = base64.b64decode(url.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


class _Server(ThreadingHTTPServer):
    """Quiet about clients that hang up: a client that stops at its first error closes its other
    requests' connections, and socketserver would print each BrokenPipeError's traceback to this
    process's stderr, the very output the CLI tests check for a traceback (seen in CI)."""

    def handle_error(self, request, client_address) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class FakeVLLM:
    """Server state: fault settings and counters (read by tests)."""

    def __init__(
        self,
        *,
        models: tuple[str, ...] = ("fake",),
        fail_first: int = 0,
        fail_status: int = 500,
        malformed_first: int = 0,
        delay_s: float = 0.0,
        shift_tail: bool = False,
        bos_on_chat: bool = False,
        port: int = 0,
    ) -> None:
        self.models = models
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.malformed_first = malformed_first
        self.delay_s = delay_s
        self.shift_tail = shift_tail
        self.bos_on_chat = bos_on_chat
        self.lock = threading.Lock()
        self.chat_requests = 0
        self.tokenize_requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.httpd = _Server(("127.0.0.1", port), _handler(self))
        self.httpd.daemon_threads = True
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self) -> FakeVLLM:
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> FakeVLLM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- request handling (returns status, body bytes) --
    def chat(self, req: dict) -> tuple[int, bytes]:
        with self.lock:
            self.chat_requests += 1
            n = self.chat_requests
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay_s:
                time.sleep(self.delay_s)
            if n <= self.fail_first:
                return self.fail_status, json.dumps({"error": {"message": "injected failure"}}).encode()
            if n <= self.fail_first + self.malformed_first:
                return 200, b'{"choices": [ {"index": 0, "mess'
            if req.get("model") not in self.models:
                msg = (
                    f"The model `{req.get('model')}` does not exist. Valid aliases: {', '.join(self.models)}."
                )
                return 404, json.dumps({"error": {"message": msg, "code": 404}}).encode()
            return 200, json.dumps(self._complete(req)).encode()
        finally:
            with self.lock:
                self.in_flight -= 1

    def _complete(self, req: dict) -> dict:
        cont = bool(req.get("continue_final_message"))
        text, urls = render(req["messages"], req.get("add_generation_prompt", True) and not cont, cont)
        b = brightness(decode_image(urls[0])) if urls else 0.5
        ids = ([BOS_ID] if self.bos_on_chat else []) + prompt_ids(text)
        if self.shift_tail:
            ids[-1] = ids[-1] + 1
        out: dict = {"id": "x", "object": "chat.completion", "model": req["model"], "prompt_token_ids": ids}
        if req.get("prompt_logprobs") is not None:
            out["prompt_logprobs"] = [None] + [
                {str(t): {"logprob": math.log(prob(t, b)), "rank": 1, "decoded_token": chr(t % 1000)}}
                for t in ids[1:]
            ]
        answer = [ord(c) for c in (" Yes" if b > 0.5 else " No")][: req.get("max_tokens", 16)] + [EOS_ID]
        answer = answer[: req.get("max_tokens", 16)]
        finish = "stop" if answer[-1] == EOS_ID else "length"
        content = [
            {"token": f"token_id:{t}", "logprob": math.log(prob(t, b)), "top_logprobs": []} for t in answer
        ]
        out["choices"] = [{
            "index": 0,
            "message": {"role": "assistant", "content": detokenize([t for t in answer if t != EOS_ID])},
            "logprobs": {"content": content} if req.get("logprobs") else None,
            "finish_reason": finish,
            "stop_reason": None,
            "token_ids": answer,
        }]  # fmt: skip
        return out


def _handler(server: FakeVLLM) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # quiet
            pass

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in two writes; without NODELAY, Nagle + delayed ACK add 40 ms.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path == "/v1/models":
                data = [{"id": m, "object": "model"} for m in server.models]
                self._send(200, json.dumps({"object": "list", "data": data}).encode())
            elif self.path == "/version":
                self._send(200, b'{"version": "fake-0"}')
            else:
                self._send(404, b'{"error": {"message": "not found"}}')

        def do_POST(self) -> None:
            req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path == "/v1/chat/completions":
                self._send(*server.chat(req))
            elif self.path == "/tokenize":
                with server.lock:
                    server.tokenize_requests += 1
                cont = bool(req.get("continue_final_message"))
                text, _ = render(req["messages"], req.get("add_generation_prompt", True) and not cont, cont)
                self._send(200, json.dumps({"tokens": prompt_ids(text), "count": 0}).encode())
            elif self.path == "/detokenize":
                self._send(200, json.dumps({"prompt": detokenize(req["tokens"])}).encode())
            else:
                self._send(404, b'{"error": {"message": "not found"}}')

    return Handler


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--delay-s", type=float, default=0.0)
    args = ap.parse_args()
    srv = FakeVLLM(port=args.port, delay_s=args.delay_s)
    sys.stdout.write(f"listening {srv.url}\n")
    sys.stdout.flush()
    srv.httpd.serve_forever()
