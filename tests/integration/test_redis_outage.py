"""Redis goes away under a stream of KiotViet deliveries: stopped for ten seconds, or killed and
restarted from its AOF. Every delivery is answered 200 or 503 (KiotViet sends a 503 again), the
web app and the workers carry on without a restart, and Abaha ends up holding exactly what
KiotViet holds."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests

from adapters.inbox import DRAIN_SHOP
from sandbox.stack import LocalStack
from tests.integration.conftest import connect_shop
from tests.integration.redis_faults import DeliveryStream, failed_jobs, started_jobs, wait_converged
from tests.integration.redis_servers import RedisServer, poll

pytestmark = [pytest.mark.integration, pytest.mark.chaos]
OUTAGE_SECONDS = 10
BETWEEN_FAULTS = 25  # changes accepted before, between and after the faults


@dataclass
class Deployment:
    redis: RedisServer
    stack: LocalStack


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    state = tmp_path_factory.mktemp("outage")
    server = RedisServer(state / "redis").start()
    environ = {k: v for k, v in os.environ.items() if k not in ("KIOTVIET_API_URL", "ABAHA_API_URL", "PUBLIC_BASE_URL")}
    environ.update(
        REDIS_URL=server.url,
        LOG_FORMAT="json",
        RECONCILE_INTERVAL="0",
        # fresh catalogue rows are read once each: the shop's KiotViet budget would pace a long
        # stream, and what is tested here is Redis, not the budget
        KIOTVIET_HOURLY_BUDGET="1000000",
    )
    stack = LocalStack(state / "stack", environ=environ, log_dir=state / "logs").start(workers=2)
    yield Deployment(server, stack)
    stack.stop()
    server.stop()


def break_redis(deployment: Deployment, how: str) -> None:
    """`outage`: a clean stop, ten seconds without Redis, a start; `crash`: SIGKILL, then a start
    that loads the AOF."""
    deployment.redis.stop(signal.SIGTERM if how == "outage" else signal.SIGKILL)
    if how == "outage":
        threading.Event().wait(OUTAGE_SECONDS)  # the fault itself lasts this long
    deployment.redis.start()


def run(deployment: Deployment, faults: list[str], *, settle: bool = False) -> None:
    stack = deployment.stack
    processes = [stack.web_process, *stack.workers]
    shop = connect_shop(stack)
    stream = DeliveryStream(shop).start()
    try:
        for how in faults:
            stream.wait_accepted(BETWEEN_FAULTS)
            break_redis(deployment, how)
        stream.wait_accepted(BETWEEN_FAULTS)
    finally:
        stream.finish()
    unexpected = {status: n for status, n in stream.answers.items() if status not in ("200", "503")}
    assert not unexpected, f"answers other than 200 and 503: {unexpected} of {dict(stream.answers)}"
    assert stream.answers["503"] > 0, "the outage was never seen by a delivery"
    assert all(p is not None and p.poll() is None for p in processes), "a process of the service died"
    wait_converged(shop, stream.changed)
    assert [stack.web_process, *stack.workers] == processes, "the service was restarted"
    connection = deployment.redis.client()
    failed = failed_jobs(connection)
    assert set(failed) <= {DRAIN_SHOP}, f"changes failed for good: {failed}"
    if settle:  # an interrupted job is found abandoned ~70 s after its last heartbeat
        poll(lambda: started_jobs(connection) == 0, 150, "jobs were left started")
    assert requests.get(stack.url + "/readyz", timeout=5).status_code == 200
    # the figures docs/reliability.md quotes (pytest -s shows them)
    print(
        f"redis {'+'.join(faults)}: changes={len(stream.changed)} answers={dict(stream.answers)} "
        f"interrupted drains={failed[DRAIN_SHOP]}"
    )


def test_redis_killed_then_stopped_for_ten_seconds_loses_nothing_accepted_and_needs_no_restart(
    deployment: Deployment,
) -> None:
    run(deployment, ["crash", "outage"])


@pytest.mark.long
def test_redis_broken_again_and_again_loses_nothing(deployment: Deployment) -> None:
    run(deployment, ["crash", "outage"] * 3, settle=True)
