"""Replaying failed jobs, all of them or those of one shop and type."""

from __future__ import annotations

from typing import Any

import redis
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.serializers import JSONSerializer

from adapters.inbox import QUEUES, RETRY_INTERVALS, event_queue


def requeue_failed(redis_client: redis.Redis, shop_id: str | None = None, kind: str | None = None) -> list[str]:
    """Put matching failed jobs back on their queue, with a fresh retry budget. `kind` is an
    event type (`product.update`) or `sync` for full-sync pages."""
    requeued: list[str] = []
    for name in QUEUES:
        registry = event_queue(redis_client, name).failed_job_registry
        for job_id in registry.get_job_ids():
            try:
                job = Job.fetch(job_id, connection=redis_client, serializer=JSONSerializer)
            except NoSuchJobError:
                continue  # expired meanwhile
            shop, job_kind = describe(job)
            if shop_id not in (None, shop) or kind not in (None, job_kind):
                continue
            job.retries_left = len(RETRY_INTERVALS)
            job.save()
            registry.requeue(job)
            requeued.append(job_id)
    return requeued


def describe(job: Job) -> tuple[Any, Any]:
    """The shop and kind of a job: an event's own, or a full-sync page's."""
    first = job.args[0] if job.args else None
    if isinstance(first, dict):
        return first.get("shop_id"), first.get("type")
    return first, "sync"
