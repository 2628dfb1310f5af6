"""Where accepted changes land: the pending store, and one queued drain job per shop that has
changes waiting (`workers/drain.py`), so a shop's changes are applied in batches."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import redis
import structlog
from rq import Queue, Retry, Worker
from rq.serializers import JSONSerializer
from rq.worker import BaseWorker

from adapters.pending import Accepted, PendingStore
from adapters.state import Delivery, SyncState
from schemas.changes import Change, change_of
from schemas.events import Event, Outcome

log = structlog.get_logger(__name__)
EVENTS_QUEUE = "events"
SYNC_QUEUE = "sync"
QUEUES = (EVENTS_QUEUE, SYNC_QUEUE)
DRAIN_SHOP = "workers.drain.drain_shop"
APPLY_CHANGE = "workers.drain.apply_change"
RETRY_INTERVALS = [5, 30, 120, 600, 1800, 3600]
BUSY_SECONDS = (2, 8)  # a change whose entity is busy elsewhere is tried again within this, at random
BUSY_TRIES = 90  # that many such waits at most (minutes: longer than a dead worker's lease or lock lasts)
JOB_SECONDS = 100  # RQ stops a job running longer
FAILED_TTL = 30 * 24 * 3600


def event_queue(redis_client: redis.Redis, name: str = EVENTS_QUEUE) -> Queue:
    """An RQ queue of the service, with JSON job arguments (readable in the dashboard)."""
    return Queue(name, connection=redis_client, serializer=JSONSerializer)


def live_workers(redis_client: redis.Redis) -> list[BaseWorker]:
    """RQ workers whose heartbeat is current (a dead worker's entry lapses after its TTL)."""
    return Worker.all(connection=redis_client, serializer=JSONSerializer)


def busy_wait() -> int:
    """Seconds before a change whose entity another worker holds is tried again."""
    return random.randint(*BUSY_SECONDS)  # noqa: S311 - spreading retries out, not secrecy


def job_retry() -> Retry:
    """The schedule of retries for a job that met a transient failure."""
    return Retry(max=len(RETRY_INTERVALS), interval=RETRY_INTERVALS)


class EventInbox:
    """Accepts events into the pending store and wakes the shop's drain."""

    def __init__(self, redis_client: redis.Redis, pending: PendingStore) -> None:
        self._redis = redis_client
        self._pending = pending
        self._state = SyncState(redis_client)
        self._queue = event_queue(redis_client)

    def accept(self, shop_id: str, events: Sequence[Event], branch_id: int | None = None,
               delivery: Delivery | None = None) -> Accepted:  # fmt: skip
        """Events from a delivery or an Abaha post; those not synced by design are counted, and
        so is the `delivery` they came in (in the script that accepts them, when any is synced)."""
        changes: list[Change] = []
        ignored: dict[str, int] = {}
        for event in events:
            change = change_of(event, branch_id)
            if change is None:
                ignored[event.type] = ignored.get(event.type, 0) + 1
            else:
                changes.append(change)
        if ignored:
            # counted by the noun of their type (`invoice.update` → invoice): they have no entity kind
            by_kind: Counter[str] = Counter()
            for kind, n in ignored.items():
                by_kind[kind.split(".", 1)[0]] += n
            self._state.count_kinds(shop_id, {(kind, Outcome.IGNORED.value): n for kind, n in by_kind.items()})
            log.info("events.not_synced", shop_id=shop_id, types=ignored)
        if not changes and delivery is not None:
            self._state.count_delivery(delivery.source, delivery.types)
        return self.accept_changes(shop_id, changes, delivery)

    def accept_changes(self, shop_id: str, changes: Sequence[Change], delivery: Delivery | None = None) -> Accepted:
        """Changes of one shop, pending until its drain applies them."""
        if not changes:
            return Accepted()
        accepted = self._pending.accept(shop_id, changes, delivery)
        if accepted.drain_needed:
            self.enqueue_drain(shop_id)
        return accepted

    def wake(self, shop_id: str, delay: float = 0) -> None:
        """Make sure a drain of the shop is queued (now, or after `delay` seconds)."""
        if self._pending.claim_drain(shop_id, max(int(delay) + 60, 300)):
            self.enqueue_drain(shop_id, delay)

    def enqueue_drain(self, shop_id: str, delay: float = 0, *, look: bool = False) -> None:
        # a drain holds no change of its own (a dead one's batch goes back to pending): nothing
        # in it is for an operator to replay, so it is not kept long when it fails
        options: dict[str, Any] = {"job_timeout": JOB_SECONDS, "result_ttl": 60, "failure_ttl": 3600,
                                   "description": f"apply pending changes shop={shop_id}",
                                   "args": (shop_id,), "kwargs": {"look": True} if look else {}}  # fmt: skip
        if delay > 0:
            self._queue.enqueue_in(timedelta(seconds=delay), DRAIN_SHOP, **options)
        else:
            self._queue.enqueue(DRAIN_SHOP, **options)
