"""The whole service on one machine: Redis, the sandbox peers, gunicorn and RQ workers.

Used by the run command (`python -m sandbox`) and by the integration tests, so both start the
service the same way.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import requests

from adapters.embedded_redis import (
    ensure_embedded_redis,
    start_redis_server,
    stop_embedded_redis,
    take_embedded_redis,
    wait_for_redis,
)
from sandbox.server import SandboxServer

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_ready(url: str, deadline_seconds: float = 30.0) -> None:
    """Poll `url` until it answers 200."""
    deadline = time.monotonic() + deadline_seconds
    while True:
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not become ready")
        time.sleep(0.1)


class LocalStack:
    """Starts what is not configured in `environ`, then the web app and workers."""

    def __init__(
        self,
        state_dir: Path,
        *,
        environ: dict[str, str] | None = None,
        web_port: int = 0,
        sandbox_port: int = 0,
        private_redis: bool = False,
        log_dir: Path | None = None,
        app: str = "wsgi:app",
    ) -> None:
        self.state_dir = state_dir
        self.app = app  # what gunicorn serves: the service's app, or a benchmark's wrapping it
        self.base_env = dict(os.environ if environ is None else environ)
        self.web_port = web_port or free_port()
        self.sandbox_port = sandbox_port
        self.private_redis = private_redis
        self.log_dir = log_dir
        self.sandbox: SandboxServer | None = None
        self.env: dict[str, str] = {}
        self._redis_process: subprocess.Popen[bytes] | None = None
        # the embedded Redis is shut down with the stack that took it (its data stays on disk)
        self._took_embedded = False
        self._web: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        self._logs: list[IO[bytes]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def web_process(self) -> subprocess.Popen[bytes] | None:
        """gunicorn's master process, once started."""
        return self._web

    def start(self, workers: int = 1) -> LocalStack:
        self.env = {**self.base_env, **self._redis_env(), **self._peer_env()}
        self.env.setdefault("PUBLIC_BASE_URL", self.url)
        self.env.setdefault("ADMIN_TOKEN", secrets.token_urlsafe(24))
        self.env.setdefault("SECRET_KEY", secrets.token_urlsafe(32))
        self.env.setdefault("LOCAL_STATE_DIR", str(self.state_dir))
        self.env["PYTHONPATH"] = str(ROOT)
        self._web = self._spawn("web", [sys.executable, "-m", "gunicorn", self.app, "--bind",
                                        f"127.0.0.1:{self.web_port}", "--workers", "2", "--threads", "4",
                                        "--timeout", "30"])  # fmt: skip
        for _ in range(workers):
            self.start_worker()
        wait_until_ready(self.url + "/readyz")
        return self

    def start_worker(self) -> subprocess.Popen[bytes]:
        worker = self._spawn(f"worker{len(self.workers)}", [sys.executable, "-m", "workers"])
        self.workers.append(worker)
        return worker

    def stop_worker(self, worker: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
        worker.send_signal(sig)
        worker.wait(timeout=30)
        self.workers.remove(worker)

    def stop(self) -> None:
        for process in [*self.workers, self._web]:
            if process is not None and process.poll() is None:
                process.terminate()
        for process in [*self.workers, self._web]:
            if process is not None:
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
        if self.sandbox is not None:
            self.sandbox.stop()
        if self._redis_process is not None:
            self._redis_process.terminate()
            self._redis_process.wait(timeout=10)
        if self._took_embedded:
            stop_embedded_redis(str(self.state_dir))
        for handle in self._logs:
            handle.close()

    def admin(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.env['ADMIN_TOKEN']}"}
        return requests.request(method, self.url + path, headers=headers, timeout=30, **kwargs)

    def _redis_env(self) -> dict[str, str]:
        if self.base_env.get("REDIS_URL"):
            return {}
        if not self.private_redis:
            url = ensure_embedded_redis(str(self.state_dir))
            # whoever started it (a command run before, a worker), this stack stops it when it stops
            self._took_embedded = take_embedded_redis(str(self.state_dir))
            return {"REDIS_URL": url}
        port = free_port()
        self._redis_process = start_redis_server(self.state_dir / "redis", port=port)
        url = f"redis://127.0.0.1:{port}/0"
        wait_for_redis(url)
        return {"REDIS_URL": url}

    def _peer_env(self) -> dict[str, str]:
        if self.base_env.get("KIOTVIET_API_URL") and self.base_env.get("ABAHA_API_URL"):
            return {}
        self.sandbox = SandboxServer(self.sandbox_port).start()
        return {
            "KIOTVIET_API_URL": self.sandbox.url + "/kiotviet",
            "KIOTVIET_TOKEN_URL": self.sandbox.url + "/kiotviet-id/connect/token",
            "ABAHA_API_URL": self.sandbox.url + "/abaha",
        }

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        output: IO[bytes] | None = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            output = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop()
            self._logs.append(output)
        return subprocess.Popen(args, cwd=ROOT, env=self.env, stdout=output, stderr=output)
