"""One batch of a shop runs at a time: a storm takes one worker, and the others stay free for
other shops. A drain that finds its shop's batch running leaves it be, and nothing pending is
left without a drain to come."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rq.registry import ScheduledJobRegistry

from adapters import keys
from adapters.inbox import DRAIN_SHOP, event_queue
from adapters.pending import Action, Release
from tests.conftest import SHOP
from tests.fakes import FakeAbaha, FakeKiotViet
from tests.helpers import queue_scheduled, wait_for
from tests.unit.test_stock import on_abaha, stock_delivery
from wiring import Services
from workers import drain


def queued_drains(services: Services) -> list[tuple[list[Any], dict[str, Any]]]:
    return [(list(job.args), job.kwargs) for job in event_queue(services.redis).jobs if job.func_name == DRAIN_SHOP]


def scheduled_drains(services: Services) -> list[dict[str, object]]:
    queue = event_queue(services.redis)
    ids = ScheduledJobRegistry(queue=queue).get_job_ids()  # type: ignore[no-untyped-call]
    return [job.kwargs for job in map(queue.fetch_job, ids) if job is not None and job.func_name == DRAIN_SHOP]


def running_batch(services: Services) -> str:
    """A batch of the shop taken as a worker takes it, and still running."""
    batch = services.pending.take(SHOP, drain.BATCH_LIMIT, drain.LEASE_MS, drain.RUNNING_MS)
    assert batch.entries and not batch.busy_ms
    services.redis.delete(event_queue(services.redis).key)  # its own drain job is running
    return batch.batch_id


def test_while_a_batch_of_the_shop_runs_a_drain_takes_nothing_and_looks_again_once(
    services: Services, work_off: Callable[[], int]
) -> None:
    stock_delivery(services, "d-1", [(3001, 5, 0)])
    running = running_batch(services)
    stock_delivery(services, "d-2", [(3002, 7, 0)])
    assert queued_drains(services) == [([SHOP], {})]  # the first change after a batch started asks for one
    work_off()
    assert services.pending.pending_count(SHOP) == 1  # 3002 waits: the running batch holds the shop
    assert scheduled_drains(services) == [{"look": True}]  # once, for when the mark would lapse
    stock_delivery(services, "d-3", [(3003, 9, 0)])
    assert queued_drains(services) == []  # meanwhile deliveries queue no more drains
    queue_scheduled(services.redis)
    work_off()  # the look finds the batch still running: it does not look again
    assert services.pending.pending_count(SHOP) == 2 and scheduled_drains(services) == []
    assert services.redis.get(keys.shop_key(SHOP, keys.RUNNING)).decode().startswith(f"{running}|")  # type: ignore[union-attr]


def test_a_batch_that_ends_wakes_the_drain_that_found_it_running(
    services: Services, work_off: Callable[[], int], kiotviet: FakeKiotViet, abaha: FakeAbaha
) -> None:
    for product in (3001, 3002):
        kiotviet.add_product(product)
        kiotviet.set_stock(product, 11, 4)
    on_abaha(abaha, 3001, 3002)
    stock_delivery(services, "d-1", [(3001, 4, 0)])
    running = running_batch(services)
    stock_delivery(services, "d-2", [(3002, 4, 0)])
    work_off()
    assert queued_drains(services) == []
    left = services.pending.finish(SHOP, running, [Release("stock:3001", Action.DONE)])
    assert left == 1
    # what drain_shop does after its batch: the flag the busy drain held is gone, so one is queued
    services.inbox.wake(SHOP)
    assert queued_drains(services) == [([SHOP], {})]
    work_off()
    assert services.pending.pending_count(SHOP) == 0 and abaha.products[3002]["stock"] == 4


def test_the_running_mark_of_a_dead_worker_lapses_before_its_lease(services: Services) -> None:
    stock_delivery(services, "d-1", [(3001, 5, 0)])
    services.pending.take(SHOP, drain.BATCH_LIMIT, drain.LEASE_MS, 300)  # its worker dies now
    stock_delivery(services, "d-2", [(3002, 7, 0)])
    busy = services.pending.take(SHOP, drain.BATCH_LIMIT, drain.LEASE_MS, drain.RUNNING_MS)
    assert not busy.entries and 0 < busy.busy_ms <= 300
    # once its time has passed (by Redis's clock, as a lease's), the shop takes batches again
    taken = wait_for(lambda: services.pending.take(SHOP, drain.BATCH_LIMIT, drain.LEASE_MS, drain.RUNNING_MS).entries)
    assert [e.entity for e in taken] == ["stock:3002"]  # 3001 waits for its own lease to lapse
