"""Servers that misbehave at the socket level, for the transport's timeout, deadline and body-cap
tests: one that accepts connections and never answers (optionally answering the model list first,
to hang only on generation), one whose accept queue is full (connects hang), and one answering
every request with a given body.

Run as a subprocess (`python hostile_servers.py silent --port P`) to hang a CLI audit.
"""

from __future__ import annotations

import argparse
import gzip
import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODELS_BODY = json.dumps({"object": "list", "data": [{"id": "fake", "object": "model"}]}).encode()


class SilentServer:
    """Accepts connections and reads requests; never answers them. With `answer_models`, GET
    /v1/models (and /version, with 404) are answered, so only the work requests hang."""

    def __init__(self, *, answer_models: bool = False, port: int = 0) -> None:
        self.answer_models = answer_models
        self.sock = socket.create_server(("127.0.0.1", port))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections: list[socket.socket] = []
        self.timed_requests: list[tuple[float, str]] = []  # (time.monotonic(), request line) received
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def requests(self) -> list[str]:
        return [line for _, line in self.timed_requests]

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections.append(conn)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        buf = b""
        conn.settimeout(0.1)
        while not self._stop.is_set():
            try:
                data = conn.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            buf += data
            while b"\r\n\r\n" in buf:
                head, buf = buf.split(b"\r\n\r\n", 1)
                line = head.split(b"\r\n", 1)[0].decode()
                headers = [h.lower() for h in head.split(b"\r\n")[1:]]
                length = next((int(h.split(b":")[1]) for h in headers if h.startswith(b"content-length")), 0)
                buf = buf[length:]  # bodies arrive whole for the small requests here
                self.timed_requests.append((time.monotonic(), line))
                if self.answer_models and line.startswith("GET /v1/models"):
                    conn.sendall(_http(200, MODELS_BODY))
                elif self.answer_models and line.startswith("GET /version"):
                    conn.sendall(_http(404, b'{"error": {"message": "not found"}}'))
                # anything else: silence

    def __enter__(self) -> SilentServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for conn in self.connections:
            conn.close()
        self.sock.close()


def _http(status: int, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}", "Content-Type: application/json"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class FullBacklogServer:
    """A listening socket that never accepts, with its accept queue filled: new connections are
    not completed (Linux drops the SYN), so a client waits for its connect timeout."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.fillers: list[socket.socket] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def __enter__(self) -> FullBacklogServer:
        for _ in range(4):  # listen(0) still queues one or two; fill past it
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(self.sock.getsockname())
            self.fillers.append(s)
        return self

    def __exit__(self, *exc: object) -> None:
        for s in self.fillers:
            s.close()
        self.sock.close()


class BodyServer:
    """Answers every request 200 with `body`: sized (Content-Length), chunked, or gzip-encoded."""

    def __init__(self, body: bytes, *, mode: str = "sized") -> None:
        self.body, self.mode, self.requests = body, mode, 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _answer(self) -> None:
                outer.requests += 1
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                payload = outer.body
                if outer.mode == "gzip":
                    payload = gzip.compress(payload, 9)
                    self.send_header("Content-Encoding", "gzip")
                if outer.mode == "chunked":
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for i in range(0, len(payload), 1 << 16):
                        piece = payload[i : i + (1 << 16)]
                        self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                    self.wfile.write(b"0\r\n\r\n")
                    return
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _answer

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> BodyServer:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=["silent", "silent-after-models"])
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    with SilentServer(answer_models=args.kind == "silent-after-models", port=args.port) as srv:
        sys.stdout.write(f"listening {srv.url}\n")
        sys.stdout.flush()
        threading.Event().wait()
