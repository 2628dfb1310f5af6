"""`python -m workers` restarts its RQ worker after a Redis fault, not after a stop request."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from adapters.inbox import DRAIN_SHOP, event_queue
from config import Settings
from sandbox.stack import free_port
from tests.conftest import SHOP
from tests.unit.test_stock import stock_delivery
from wiring import Services, redis_client, services_on
from workers.__main__ import build_worker, recover, stop_requested


@pytest.fixture(autouse=True)
def default_signal_handlers() -> Iterator[None]:
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def test_a_worker_told_to_stop_is_not_restarted(services: Services) -> None:
    worker = build_worker(services)
    assert not stop_requested(worker)
    worker._shutdown_requested_date = datetime.now(UTC)
    assert stop_requested(worker)


def test_waiting_for_redis_ends_on_a_stop_request(settings: Settings) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    services = services_on(settings, redis_client(dead), dead)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # until recover() takes the signal over
    threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM)).start()
    assert recover(None, services) is False  # no worker: RQ's could not even be built


def test_once_redis_answers_the_shops_that_wait_get_a_drain(services: Services) -> None:
    stock_delivery(services, "d-1", [(3001, 5, 0)])
    queue = event_queue(services.redis)
    services.redis.delete(queue.key)  # the drain queued at ingest was lost with the fault
    assert recover(build_worker(services), services) is True
    assert [(job.func_name, job.args) for job in queue.jobs] == [(DRAIN_SHOP, [SHOP])]
