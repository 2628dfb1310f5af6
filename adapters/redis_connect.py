"""Opening the service's Redis from `REDIS_URL`: a plain URL (`redis://`, `rediss://`, `unix://`)
or Redis Sentinel, `redis+sentinel://[[user]:password@]host:port[,host:port...]/master-name[/db]`.

Through Sentinel the client asks the sentinels where the master is whenever it opens a connection,
and drops a connection whose server was demoted, so after a failover the next command (or its
retry) reaches the new master. The web app, the workers, their work horses and RQ's scheduler all
use the one client built here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
from redis.sentinel import Sentinel

SENTINEL_SCHEME = "redis+sentinel"
DEFAULT_SENTINEL_PORT = 26379


@dataclass(frozen=True)
class SentinelAddress:
    """Where the sentinels are and which master of theirs holds the service's data."""

    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int = 0
    username: str | None = None
    password: str | None = None


def is_sentinel_url(url: str) -> bool:
    return url.lower().startswith(SENTINEL_SCHEME + "://")


def parse_sentinel_url(url: str) -> SentinelAddress:
    """The parts of a `redis+sentinel://` URL; ValueError says what is wrong (never echoing it,
    since it may carry a password)."""
    parts = urlsplit(url)
    if parts.scheme.lower() != SENTINEL_SCHEME:
        raise ValueError(f"REDIS_URL for Sentinel must start with {SENTINEL_SCHEME}://")
    credentials, _, hosts = parts.netloc.rpartition("@")
    sentinels = tuple(_host_port(item) for item in hosts.split(",") if item.strip())
    if not sentinels:
        raise ValueError("REDIS_URL names no sentinel: redis+sentinel://host:port[,host:port]/master-name[/db]")
    path = [unquote(p) for p in parts.path.split("/") if p]
    if not path or len(path) > 2:
        raise ValueError("REDIS_URL must name the master after the sentinels: .../master-name[/db]")
    if len(path) == 2 and not path[1].isdigit():
        raise ValueError("the database in REDIS_URL (after the master name) must be a whole number")
    username, _, password = credentials.partition(":")
    return SentinelAddress(sentinels, path[0], int(path[1]) if len(path) == 2 else 0,
                           unquote(username) or None, unquote(password) or None)  # fmt: skip


def _host_port(item: str) -> tuple[str, int]:
    host, _, port = item.strip().rpartition(":") if ":" in item else (item.strip(), "", "")
    if port and not port.isdigit():
        raise ValueError("a sentinel's port in REDIS_URL must be a number")
    return host.strip("[]"), int(port) if port else DEFAULT_SENTINEL_PORT


def open_redis(url: str, **options: Any) -> redis.Redis:
    """A client for `url` with `options` (timeouts, retry…) for every connection it opens."""
    if not is_sentinel_url(url):
        return redis.Redis.from_url(url, **options)
    address = parse_sentinel_url(url)
    # asking a sentinel is quick or it is down: the next one is asked
    timeouts = {k: v for k, v in options.items() if k in ("socket_timeout", "socket_connect_timeout")}
    sentinel = Sentinel(list(address.sentinels), sentinel_kwargs=timeouts)  # type: ignore[no-untyped-call]
    client: redis.Redis = sentinel.master_for(address.master, db=address.db, username=address.username,
                                              password=address.password, **options)  # type: ignore[no-untyped-call]  # fmt: skip
    return client
