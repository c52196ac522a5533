"""A temporary Prefect API server for one CLI run that never outlives the CLI.

Prefect's own ephemeral server is a child process that survives its parent when the parent is
killed with SIGKILL (and holds the caller's stdout/stderr open). This one starts the same uvicorn
app, but the kernel kills it when the CLI process dies (`PR_SET_PDEATHSIG`), whatever the signal;
a normal exit, SIGTERM or SIGINT stops it in `stop()`.

    with TemporaryPrefectServer(home=store / ".prefect") as server:
        os.environ["PREFECT_API_URL"] = server.api_url
        ...
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from eagle.backends.lifetime import parent_death_signal

log = logging.getLogger(__name__)

# Below this much free space under PREFECT_HOME a server that died is reported as out of disk.
_LOW_DISK_BYTES = 16 * 1024 * 1024


def _site_packages_of(package: str) -> str:
    """The directory that holds `package`, found without importing it (importing Prefect reads its
    settings, which must see PREFECT_API_URL first)."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise ServerStartError(f"{package} is not installed: pip install -e . (or pass --no-prefect)")
    return str(Path(spec.origin).parent.parent)


class ServerStartError(RuntimeError):
    pass


class TemporaryPrefectServer:
    """The Prefect API (no UI) on 127.0.0.1, its database under `home`."""

    def __init__(self, home: Path, *, start_timeout_s: float = 300.0) -> None:
        self.home = Path(home)
        self.start_timeout_s = start_timeout_s
        self.port: int | None = None
        self.process: subprocess.Popen | None = None
        self._log_path = self.home / "temporary-server.log"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def start(self) -> TemporaryPrefectServer:
        """Start the server process (returns at once; `wait_healthy` waits for it)."""
        from eagle.backends.serving import free_port

        self.home.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        env = {
            **os.environ,
            "PREFECT_HOME": str(self.home),
            "PREFECT_UI_ENABLED": "0",
            "PREFECT__SERVER_EPHEMERAL": "1",
            "PREFECT__SERVER_FINAL": "1",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        }
        env.pop("PREFECT_API_URL", None)
        cmd = [
            sys.executable, "-m", "uvicorn", "--app-dir", _site_packages_of("prefect"),
            "--factory", "prefect.server.api.server:create_app",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--log-level", "error", "--lifespan", "on",
        ]  # fmt: skip
        log_file = open(self._log_path, "ab")  # noqa: SIM115 - the child keeps it; closed in stop()
        self._log_file = log_file
        self.process = subprocess.Popen(
            cmd, env=env, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
            preexec_fn=parent_death_signal(signal.SIGKILL), close_fds=True,
        )  # fmt: skip
        return self

    def wait_healthy(self) -> None:
        import httpx

        assert self.process is not None
        deadline = time.monotonic() + self.start_timeout_s
        with httpx.Client(timeout=5) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise self._exit_error(self.process.returncode)
                try:
                    if client.get(f"{self.api_url}/health").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
        self.stop()
        raise ServerStartError(
            f"the temporary Prefect server did not answer within {self.start_timeout_s:.0f}s "
            f"(log: {self._log_path}); retry, set PREFECT_API_URL to a running server, or pass --no-prefect"
        )

    def _exit_error(self, code: int) -> ServerStartError:
        """Why the server died; a full disk under PREFECT_HOME (its database) is named as such."""
        import shutil

        from storage.writer import disk_full_message

        what = f"the temporary Prefect server exited with code {code}"
        if shutil.disk_usage(self.home).free < _LOW_DISK_BYTES:
            error = ServerStartError(f"{disk_full_message(self.home)}: {what} (its database is there)")
            error.filename = str(self.home)
            return error
        return ServerStartError(f"{what}; see {self._log_path} (or pass --no-prefect to run without Prefect)")

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if getattr(self, "_log_file", None) is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> TemporaryPrefectServer:
        self.start()
        try:
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
