"""REDIS_URL through Redis Sentinel: the master is SIGKILLed under a stream of KiotViet deliveries, a
replica is promoted, and the web app and the workers follow it without a restart. Every delivery
is answered 200 or 503, and what was accepted reaches Abaha."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests

from adapters.inbox import DRAIN_SHOP
from sandbox.stack import LocalStack
from tests.integration.conftest import connect_shop
from tests.integration.redis_faults import DeliveryStream, failed_jobs, wait_converged
from tests.integration.redis_servers import SentinelGroup, debian_binary

# about a minute each on this machine: run with ./test.sh -m chaos (the default run has the outage test)
pytestmark = [
    pytest.mark.integration,
    pytest.mark.chaos,
    pytest.mark.long,
    pytest.mark.skipif(debian_binary("redis-sentinel") is None, reason="needs Debian's redis-sentinel"),
]


@dataclass
class Replicated:
    group: SentinelGroup
    stack: LocalStack


@pytest.fixture(scope="module")
def replicated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicated]:
    state = tmp_path_factory.mktemp("failover")
    group = SentinelGroup(state / "redis").start()
    environ = {k: v for k, v in os.environ.items() if k not in ("KIOTVIET_API_URL", "ABAHA_API_URL", "PUBLIC_BASE_URL")}
    environ.update(
        REDIS_URL=group.url,
        LOG_FORMAT="json",
        RECONCILE_INTERVAL="0",
        # fresh catalogue rows are read once each: the shop's KiotViet budget would pace a long
        # stream, and what is tested here is Redis, not the budget
        KIOTVIET_HOURLY_BUDGET="1000000",
    )
    stack = LocalStack(state / "stack", environ=environ, log_dir=state / "logs").start(workers=2)
    yield Replicated(group, stack)
    stack.stop()
    group.stop()


def fail_over(replicated: Replicated, rounds: int) -> None:
    stack, group = replicated.stack, replicated.group
    processes = [stack.web_process, *stack.workers]
    shop = connect_shop(stack)
    stream = DeliveryStream(shop).start()
    masters = [group.master_port()]
    try:
        for _ in range(rounds):
            stream.wait_accepted(25)
            dead = group.kill_master()
            masters.append(group.master_port())
            # as an operator would; with min-replicas-to-write 1 the next master needs a replica
            group.bring_back(dead)
        stream.wait_accepted(25)
    finally:
        stream.finish()
    unexpected = {status: n for status, n in stream.answers.items() if status not in ("200", "503")}
    assert not unexpected, f"answers other than 200 and 503: {unexpected} of {dict(stream.answers)}"
    assert all(p is not None and p.poll() is None for p in processes), "a process of the service died"
    wait_converged(shop, stream.changed)
    assert [stack.web_process, *stack.workers] == processes, "the service was restarted"
    failed = failed_jobs(group.master().client())
    assert set(failed) <= {DRAIN_SHOP}, f"changes failed for good: {failed}"
    assert requests.get(stack.url + "/readyz", timeout=5).status_code == 200
    print(f"redis failover x{rounds} (masters {masters}): changes={len(stream.changed)} "
          f"answers={dict(stream.answers)} interrupted drains={failed[DRAIN_SHOP]}")  # fmt: skip


def test_the_service_follows_a_promoted_replica_and_loses_nothing_accepted(replicated: Replicated) -> None:
    fail_over(replicated, rounds=1)


def test_the_service_follows_two_failovers_in_a_row(replicated: Replicated) -> None:
    fail_over(replicated, rounds=2)
