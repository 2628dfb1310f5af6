"""The embedded Redis of local runs: `./run.sh` stops it when it stops, even when a command run
before it (or beside it, while it was still installing) is what started it, and leaves it alone
while another run command owns it. Real redis-server processes from the pinned binary."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from adapters.embedded_redis import (
    OWNER_FILE,
    _identity,
    embedded_url,
    ensure_embedded_redis,
    stop_embedded_redis,
    take_embedded_redis,
)
from sandbox.stack import ROOT, LocalStack


def answers(state_dir: Path) -> bool:
    try:
        return bool(redis.Redis.from_url(embedded_url(str(state_dir)), socket_connect_timeout=0.5).ping())
    except redis.exceptions.ConnectionError:
        return False


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    # a unix socket path must stay short (about 100 bytes)
    yield tmp_path
    if answers(tmp_path):  # whatever a failed test left running
        redis.Redis.from_url(embedded_url(str(tmp_path))).shutdown()


def command(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`flask --app wsgi <args>` in another process, as from another terminal."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "ADMIN_TOKEN", "LOG_FORMAT")}
    env["LOCAL_STATE_DIR"] = str(state_dir)
    return subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60, check=True)  # fmt: skip


def test_run_stops_the_embedded_redis_a_command_started_before_it(state_dir: Path) -> None:
    command(state_dir, "connections", "list")  # starts the embedded Redis, which outlives it
    assert answers(state_dir)
    stack = LocalStack(state_dir, environ={})
    stack.env = stack._redis_env()
    assert stack.env["REDIS_URL"] == embedded_url(str(state_dir))
    stack.stop()  # Ctrl-C on ./run.sh
    assert not answers(state_dir)
    assert not (state_dir / "redis" / OWNER_FILE).exists()


def test_a_command_beside_run_changes_nothing_run_owns(state_dir: Path) -> None:
    stack = LocalStack(state_dir, environ={})
    stack.env = stack._redis_env()  # ./run.sh started it
    assert command(state_dir, "connections", "list").stdout.strip() == "[]"  # another terminal
    assert answers(state_dir)
    stack.stop()
    assert not answers(state_dir)


def test_another_live_run_keeps_its_embedded_redis(state_dir: Path) -> None:
    ensure_embedded_redis(str(state_dir))
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        identity = _identity(other.pid)
        assert identity is not None
        (state_dir / "redis" / OWNER_FILE).write_text(identity)  # another ./run.sh took it
        assert take_embedded_redis(str(state_dir)) is False
        stop_embedded_redis(str(state_dir))
        assert answers(state_dir)
    finally:
        other.kill()
        other.wait()
    assert take_embedded_redis(str(state_dir)) is True  # that run died without stopping it
    stop_embedded_redis(str(state_dir))
    assert not answers(state_dir)


def test_a_pid_given_to_another_process_since_is_not_the_owner(state_dir: Path) -> None:
    ensure_embedded_redis(str(state_dir))
    identity = _identity(1)
    assert identity is not None
    pid = identity.split()[0]
    (state_dir / "redis" / OWNER_FILE).write_text(f"{pid} 0")  # pid 1, but started at another time
    assert take_embedded_redis(str(state_dir)) is True
    stop_embedded_redis(str(state_dir))
    assert not answers(state_dir)
