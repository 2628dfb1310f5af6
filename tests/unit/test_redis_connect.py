"""REDIS_URL names a Redis or, with redis+sentinel://, the sentinels that know where its master is."""

from __future__ import annotations

import pytest
from redis.sentinel import SentinelConnectionPool

from adapters.redis_connect import SentinelAddress, open_redis, parse_sentinel_url
from config import ConfigError, Settings


def test_a_sentinel_url_lists_its_sentinels_the_master_and_the_database() -> None:
    address = parse_sentinel_url("redis+sentinel://:s%40cret@10.0.0.1:26379,10.0.0.2,[::1]:26380/sync/3")
    assert address == SentinelAddress(sentinels=(("10.0.0.1", 26379), ("10.0.0.2", 26379), ("::1", 26380)),
                                      master="sync", db=3, username=None, password="s@cret")  # fmt: skip


def test_the_database_defaults_to_zero() -> None:
    assert parse_sentinel_url("redis+sentinel://127.0.0.1:26379/mymaster").db == 0


@pytest.mark.parametrize("url", ["redis+sentinel://127.0.0.1:26379", "redis+sentinel:///sync",
                                 "redis+sentinel://h:port/sync", "redis+sentinel://h/sync/zero",
                                 "redis+sentinel://h/sync/0/extra"])  # fmt: skip
def test_a_malformed_sentinel_url_stops_the_service_at_startup(url: str) -> None:
    with pytest.raises(ConfigError):
        Settings.from_env({"REDIS_URL": url})


def test_the_error_never_repeats_a_password_from_the_url() -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"REDIS_URL": "redis+sentinel://:hunter2@h:port/sync"})
    assert "hunter2" not in str(raised.value)


def test_a_sentinel_url_opens_a_client_of_the_named_master_with_the_given_timeouts() -> None:
    client = open_redis("redis+sentinel://127.0.0.1:1,127.0.0.1:2/sync/2", socket_timeout=1.0)
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool)
    assert (pool.service_name, pool.connection_kwargs["db"], pool.connection_kwargs["socket_timeout"]) == (
        "sync",
        2,
        1.0,
    )


def test_a_plain_url_opens_a_plain_client() -> None:
    client = open_redis("redis://127.0.0.1:6390/4", socket_timeout=1.0)
    assert client.connection_pool.connection_kwargs["db"] == 4
