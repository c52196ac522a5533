"""Server faults through the CLI (`eagle-audit explain --backend vllm-server`): each ends with one
`Error:` line naming the endpoint, exit 1, no traceback; `--timeout`, `--deadline` and
`--concurrency` reach the backend and bound the wait."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from vllm_fake_server import FakeVLLM

from eagle.backends.serving import free_port
from eagle_audit.cli import main
from eagle_audit.commands.backend_options import backend_keywords

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("img") / "scene.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(path)
    return path


def explain(image: Path, url: str, out: Path, *extra: str):
    args = ["explain", "--image", str(image), "--prompt", "Is there a star in the image?", "--answer", "Yes",
            "--regions", "4", "--backend", "vllm-server", "--endpoint", url, "--model", "fake",
            "--out", str(out), *extra]  # fmt: skip
    return CliRunner().invoke(main, args)


def last_line_error(output: str, *needles: str) -> str:
    assert "Traceback" not in output, output
    last = output.rstrip("\n").splitlines()[-1]
    assert last.startswith("Error: "), output
    for needle in needles:
        assert needle in last, last
    return last


def test_the_options_reach_the_backend(image, tmp_path):
    with FakeVLLM(delay_s=0.01) as srv:
        out = explain(image, srv.url, tmp_path, "--concurrency", "2", "--timeout", "5", "--deadline", "30")
        assert out.exit_code == 0, out.output
        assert 1 <= srv.max_in_flight <= 2 and (tmp_path / "summary.json").exists()
    assert backend_keywords("vllm-server", concurrency=3, timeout=2.5, deadline=9.0) == {
        "concurrency": 3, "timeout_s": 2.5, "deadline_s": 9.0,
    }  # fmt: skip
    assert backend_keywords("vllm-server") == {"concurrency": 64}  # library defaults for the rest


def test_server_options_on_an_in_process_backend_are_usage_errors(image, tmp_path):
    args = ["explain", "--image", str(image), "--prompt", "Q", "--answer", "Yes", "--out", str(tmp_path)]
    out = CliRunner().invoke(main, [*args, "--timeout", "3"])
    assert out.exit_code == 2
    assert "Error: --timeout applies to --backend vllm-server only" in out.output


def test_closed_port(image, tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    out = explain(image, url, tmp_path, "--deadline", "1")
    assert out.exit_code == 1 and time.monotonic() - t0 < 10
    last_line_error(out.output, f"cannot reach the vLLM server at {url}", "--endpoint")


def test_persistent_5xx_stops_at_the_deadline(image, tmp_path):
    with FakeVLLM(fail_first=10**6, fail_status=503) as srv:
        t0 = time.monotonic()
        out = explain(image, srv.url, tmp_path, "--deadline", "1")
        took = time.monotonic() - t0
    assert out.exit_code == 1 and took < 8
    last_line_error(out.output, srv.url, "503", "stopped at the --deadline of 1s")


def test_malformed_json(image, tmp_path):
    with FakeVLLM(malformed_first=10**6) as srv:
        out = explain(image, srv.url, tmp_path, "--deadline", "1")
    assert out.exit_code == 1
    last_line_error(out.output, srv.url, "not JSON")


def test_wrong_token_ids(image, tmp_path):
    with FakeVLLM(shift_tail=True) as srv:
        out = explain(image, srv.url, tmp_path)
    assert out.exit_code == 1
    last_line_error(out.output, srv.url, "teacher-forced answer tokens")


def test_a_hung_server_ends_the_command_within_the_bound(image, tmp_path):
    """The real CLI in a subprocess against a server that accepts connections and never answers:
    one Error line on stderr within --timeout x attempts (+ start-up), nothing else."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, str(HERE / "hostile_servers.py"), "silent", "--port", str(port)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert "listening" in server.stdout.readline()
        t0 = time.monotonic()
        cli = subprocess.run(
            [sys.executable, "-m", "eagle_audit", "explain", "--image", str(image), "--prompt", "Q",
             "--answer", "Yes", "--backend", "vllm-server", "--endpoint", f"http://127.0.0.1:{port}",
             "--timeout", "1", "--out", str(tmp_path)],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        took = time.monotonic() - t0
    finally:
        server.kill()
        server.wait()
    assert cli.returncode == 1
    # 5 attempts of 1 s, backoff 0.25-8 s between them (at most 0.5+1+2+4), and the CLI's start-up
    assert took < 5 * 1 + 7.5 + 20
    errors = [line for line in cli.stderr.splitlines() if line.startswith("Error:")]
    assert errors == [cli.stderr.rstrip("\n").splitlines()[-1]] and "Traceback" not in cli.stderr
    assert f"http://127.0.0.1:{port} did not answer GET /v1/models within 1s (attempt 5 of 5)" in errors[0]


def test_the_fake_server_says_nothing_when_a_client_hangs_up(capfd):
    """The CLI tests above read this process's output for tracebacks, and the fake server runs in
    it: a client that resets its connections (as the CLI does to its other requests when it stops at
    the first error) must not make the server print one."""
    import socket
    import struct

    with FakeVLLM() as srv:
        port = srv.httpd.server_address[1]
        for _ in range(20):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()  # linger 0: a reset, not an orderly close
        time.sleep(0.5)
    assert "Traceback" not in capfd.readouterr().err
