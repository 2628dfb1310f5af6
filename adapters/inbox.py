"""Where accepted deliveries land: an atomic dedupe claim and the job, or the quarantine."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import redis
from rq import Queue, Retry
from rq.job import Job
from rq.serializers import JSONSerializer

from schemas.events import Event

EVENTS_QUEUE = "events"
SYNC_QUEUE = "sync"
# workers take from the first queue that has a job: events are never behind a long sync
QUEUES = (EVENTS_QUEUE, SYNC_QUEUE)
APPLY_EVENT = "workers.jobs.apply_event"
CLAIM_SECONDS = 30 * 24 * 3600
QUARANTINE_KEY = "sync:quarantine"
QUARANTINE_LIMIT = 1000
QUARANTINE_BODY_BYTES = 16 * 1024
RETRY_INTERVALS = [5, 30, 120, 600, 1800, 3600]
EVENT_JOB_SECONDS = 100  # RQ stops a job running longer; entity locks (120 s) outlive it


def event_queue(redis_client: redis.Redis, name: str = EVENTS_QUEUE) -> Queue:
    """The RQ queue of events, with JSON job arguments (readable in the dashboard)."""
    return Queue(name, connection=redis_client, serializer=JSONSerializer)


def job_retry() -> Retry:
    """The schedule of retries for a job that met a transient failure."""
    return Retry(max=len(RETRY_INTERVALS), interval=RETRY_INTERVALS)


class EventInbox:
    """Enqueues each event once, however often it is delivered."""

    def __init__(self, redis_client: redis.Redis) -> None:
        self._redis = redis_client
        self._queue = event_queue(redis_client)

    def accept(self, events: Sequence[Event]) -> int:
        """Claim and enqueue in one transaction; return how many were new."""
        if not events:
            return 0
        claims = [f"sync:claim:{event.id}" for event in events]
        with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(*claims)  # type: ignore[no-untyped-call]
                    held = pipe.mget(claims)
                    fresh = [e for e, h in zip(events, held, strict=True) if h is None]
                    pipe.multi()
                    for event in fresh:
                        pipe.set(f"sync:claim:{event.id}", event.received_at, ex=CLAIM_SECONDS)
                        self._queue.enqueue_job(self._job(event), pipeline=pipe)
                    pipe.execute()
                    return len(fresh)
                except redis.exceptions.WatchError:
                    continue  # a concurrent delivery claimed some of them: look again

    def _job(self, event: Event) -> Job:
        return self._queue.create_job(
            APPLY_EVENT,
            args=(event.to_json(),),
            job_id=event.id,
            description=f"{event.source} {event.type} {event.entity_id} shop={event.shop_id}",
            retry=job_retry(),
            timeout=EVENT_JOB_SECONDS,
            result_ttl=24 * 3600,
            failure_ttl=30 * 24 * 3600,
        )

    def quarantine(self, shop_id: str, reason: str, raw: bytes, details: dict[str, Any], *, known_shop: bool) -> None:
        """Keep a rejected delivery with its reason, in a list of bounded length."""
        entry = {
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "shop_id": shop_id,
            "reason": reason,
            "size": len(raw),
            "body": raw[:QUARANTINE_BODY_BYTES].decode("utf-8", "replace"),
            **details,
        }
        pipe = self._redis.pipeline(transaction=True)
        pipe.lpush(QUARANTINE_KEY, json.dumps(entry, ensure_ascii=False))
        pipe.ltrim(QUARANTINE_KEY, 0, QUARANTINE_LIMIT - 1)
        # an unknown shop id comes from the URL: count it without making a key per stranger
        pipe.hincrby(f"sync:stats:{shop_id if known_shop else '_unknown'}", "quarantined", 1)
        pipe.hincrby("sync:quarantine:reasons", reason.split(":")[0][:60], 1)
        pipe.execute()

    def quarantined(self, shop_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The latest quarantined deliveries, newest first."""
        entries = [json.loads(e) for e in self._redis.lrange(QUARANTINE_KEY, 0, QUARANTINE_LIMIT)]  # type: ignore[union-attr]
        return [e for e in entries if shop_id in (None, e["shop_id"])][:limit]
