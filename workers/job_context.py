"""Each job's log context: its RQ job id, and the shop and event it is about, bound while it runs
and dropped after, so every line a job logs (RQ's own about it included) names it, and a change
can be followed from the delivery that brought it (`event_ids`) to its write."""

from __future__ import annotations

from typing import Any

import structlog
from rq import Queue, Worker
from rq.exceptions import DeserializationError
from rq.job import Job
from rq.worker import BaseWorker

from adapters.inbox import DRAIN_SHOP
from workers.reconcile import RECONCILE_SHOP
from workers.sync import SYNC_STEP

SHOP_FIRST = (DRAIN_SHOP, SYNC_STEP, RECONCILE_SHOP)  # jobs whose first argument is a shop id


class JobContext(BaseWorker):
    """Binds each job's context for the time it is performed (mixed into an RQ worker class)."""

    def perform_job(self, job: Job, queue: Queue) -> bool:
        tokens = structlog.contextvars.bind_contextvars(**job_fields(job))
        try:
            return super().perform_job(job, queue)
        finally:
            structlog.contextvars.reset_contextvars(**tokens)


class SyncWorker(JobContext, Worker):
    """The service's worker: RQ's forking worker, each job with its log context."""


def job_fields(job: Job) -> dict[str, Any]:
    """`job_id`, and the shop (a drain, a full-sync step, a pull) or the event (one change) the
    job's first argument names."""
    fields: dict[str, Any] = {"job_id": job.id}
    try:
        first = job.args[0] if job.args else None
    except DeserializationError:  # RQ fails such a job itself
        return fields
    if isinstance(first, dict):
        fields.update(event_id=first.get("id"), shop_id=first.get("shop_id"))
    elif isinstance(first, str) and job.func_name in SHOP_FIRST:
        fields["shop_id"] = first
    return {k: v for k, v in fields.items() if v is not None}
