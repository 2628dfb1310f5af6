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


# what docs/operations.md asks of a replicated Redis: the master refuses writes when no replica
# has acknowledged the stream for 10 s, which bounds what a failover can lose
REPLICATED_SETTINGS = ("--min-replicas-to-write", "1", "--min-replicas-max-lag", "10")
# a sentinel promotes no replica cut off from the master for over 10 × this (plus the time the master
# has been down): shorter, and a sentinel stalled by a busy machine (its 30 s TILT) promotes nothing
DOWN_AFTER_MS = 5000


class SentinelGroup:
    """A master, its replicas, and sentinels watching them, all on private ports under `directory`.
    Sentinels fail over 5 s after the master stops answering, as production would."""

    def __init__(self, directory: Path, *, replicas: int = 2, sentinels: int = 3, name: str = "sync") -> None:
        binary = debian_binary("redis-sentinel")
        if binary is None:
            raise RuntimeError("redis-sentinel is not installed (Debian's redis-sentinel package)")
        self.binary, self.directory, self.name = binary, directory, name
        self.nodes = [RedisServer(directory / "node0", extra=REPLICATED_SETTINGS)]
        self.nodes += [RedisServer(directory / f"node{n}") for n in range(1, replicas + 1)]
        self.sentinel_ports = [free_port() for _ in range(sentinels)]
        self.sentinels: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{self.name}/0"

    def start(self) -> SentinelGroup:
        master, *replicas = self.nodes
        master.start()
        for replica in replicas:
            replica.extra = (*REPLICATED_SETTINGS, "--replicaof", "127.0.0.1", str(master.port))
            replica.start()
        for n, port in enumerate(self.sentinel_ports):
            self.sentinels.append(self._start_sentinel(n, port, master.port))
        poll(lambda: self._sentinels_see(len(replicas)), 30, "the sentinels did not find the replicas")
        return self

    def _start_sentinel(self, n: int, port: int, master_port: int) -> subprocess.Popen[bytes]:
        directory = self.directory / f"sentinel{n}"
        directory.mkdir(parents=True, exist_ok=True)
        quorum = len(self.sentinel_ports) // 2 + 1
        conf = directory / "sentinel.conf"
        conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {directory}\nlogfile {directory / 'sentinel.log'}\n"
                        f"sentinel monitor {self.name} 127.0.0.1 {master_port} {quorum}\n"
                        f"sentinel down-after-milliseconds {self.name} {DOWN_AFTER_MS}\n"
                        f"sentinel failover-timeout {self.name} 10000\n")  # fmt: skip
        return subprocess.Popen([self.binary, str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def _sentinel(self, port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=1, decode_responses=True)

    def _sentinels_see(self, replicas: int) -> bool:
        try:
            return all(self._healthy_replicas(p) == replicas for p in self.sentinel_ports)
        except redis.exceptions.RedisError:
            return False

    def _healthy_replicas(self, port: int) -> int:
        """Replicas this sentinel sees up and in sync with the master (it also lists dead ones)."""
        found = self._sentinel(port).sentinel_slaves(self.name)  # type: ignore[no-untyped-call]
        return sum(1 for r in found if not r["is_sdown"] and not r["is_disconnected"]
                   and r.get("master-link-status") == "ok")  # fmt: skip

    def master_port(self) -> int:
        """The master's port as the first answering sentinel says."""
        for port in self.sentinel_ports:
            try:
                found = self._sentinel(port).sentinel_get_master_addr_by_name(self.name)  # type: ignore[no-untyped-call]
                assert isinstance(found, tuple | list), found
                return int(found[1])
            except redis.exceptions.RedisError:
                continue
        raise AssertionError("no sentinel answers")

    def master(self) -> RedisServer:
        port = self.master_port()
        return next(node for node in self.nodes if node.port == port)

    def kill_master(self) -> RedisServer:
        """SIGKILL the master and wait until the sentinels promoted a replica; answers the dead one."""
        old = self.master()
        old.stop(signal.SIGKILL)
        poll(lambda: self.master_port() != old.port, 90, "no replica was promoted")
        return old

    def bring_back(self, node: RedisServer) -> None:
        """Start a killed node again, as an operator would: the sentinels make it a replica of the
        current master (its own data is replaced by the master's)."""
        node.start()
        running = sum(n.running() for n in self.nodes)
        poll(lambda: self._sentinels_see(running - 1), 60, "the node did not rejoin as a replica")

    def stop(self) -> None:
        for sentinel in self.sentinels:
            sentinel.terminate()
            sentinel.wait(timeout=10)
        for node in self.nodes:
            node.stop()
