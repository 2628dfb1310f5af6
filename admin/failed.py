"""Replaying failed jobs, all of them or those of one shop and type."""

from __future__ import annotations

import redis
from rq.job import Job
from rq.serializers import JSONSerializer

from adapters.inbox import QUEUES, RETRY_INTERVALS, event_queue


def requeue_failed(redis_client: redis.Redis, shop_id: str | None = None, kind: str | None = None) -> list[str]:
    """Put matching failed jobs back on their queue, with a fresh retry budget."""
    requeued: list[str] = []
    for name in QUEUES:
        registry = event_queue(redis_client, name).failed_job_registry
        for job_id in registry.get_job_ids():
            job = Job.fetch(job_id, connection=redis_client, serializer=JSONSerializer)
            event = job.args[0] if job.args and isinstance(job.args[0], dict) else {}
            if shop_id not in (None, event.get("shop_id")) or kind not in (None, event.get("type")):
                continue
            job.retries_left = len(RETRY_INTERVALS)
            job.save()
            registry.requeue(job)
            requeued.append(job_id)
    return requeued
