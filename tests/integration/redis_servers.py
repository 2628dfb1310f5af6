"""Redis processes a test can stop, kill and restart: a persisted server on a fixed port, and a
master with replicas watched by Redis Sentinel (Debian's `redis-server` and `redis-sentinel`)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import redis

from adapters.embedded_redis import redis_server_binary
from sandbox.stack import free_port

# what docs/operations.md asks of a production Redis
PRODUCTION_SETTINGS = ("--appendonly", "yes", "--appendfsync", "everysec", "--maxmemory-policy", "noeviction")


def debian_binary(name: str) -> str | None:
    """A Redis binary from the machine's packages (Sentinel is not in the pinned wheel)."""
    return shutil.which(name, path="/usr/bin:/usr/local/bin")


def poll(probe: Callable[[], bool], deadline: float, what: str) -> None:
    end = time.monotonic() + deadline
    while not probe():
        if time.monotonic() > end:
            raise AssertionError(f"{what} within {deadline}s")
        time.sleep(0.05)


def answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.3, socket_timeout=0.5).ping())
    except redis.exceptions.RedisError:
        return False


class RedisServer:
    """One redis-server on 127.0.0.1:`port`, its data (AOF) in `directory`, kept across restarts."""

    def __init__(self, directory: Path, *, port: int = 0, extra: tuple[str, ...] = ()) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.extra = extra
        self.binary = debian_binary("redis-server") or redis_server_binary()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def start(self) -> RedisServer:
        """Start (or restart, loading its AOF) and wait until it answers."""
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
                "--save", "", "--logfile", str(self.directory / "redis.log"),
                *PRODUCTION_SETTINGS, *self.extra]  # fmt: skip
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        poll(lambda: answers(self.url), 20, f"redis on port {self.port} did not answer")
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """SIGTERM: a clean shutdown (AOF flushed); SIGKILL: a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)
        self.process = None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None
