"""Failed changes in RQ's failed registries: listed with the operator's message, and replayed,
all of them or those of one shop and type. A replay starts with the whole retry schedule."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job
from rq.serializers import JSONSerializer

from adapters.inbox import DRAIN_SHOP, QUEUES, RETRY_INTERVALS, event_queue


@dataclass(frozen=True)
class FailedChange:
    """One failed job as an operator reads it: the sentence first, the traceback kept apart."""

    job_id: str
    queue: str
    shop_id: str | None
    kind: str | None  # an event type (`product.update`), or `sync` for a full-sync page
    entity_id: str | None
    message: str
    traceback: str
    failed_at: datetime | None
    attempts: int

    def to_json(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "queue": self.queue, "shop_id": self.shop_id, "type": self.kind,
                "entity_id": self.entity_id, "message": self.message,
                "failed_at": self.failed_at.isoformat() if self.failed_at else None,
                "attempts": self.attempts}  # fmt: skip


def failed_changes(redis_client: redis.Redis, shop_id: str | None = None) -> list[FailedChange]:
    """Every failed job (of one shop), newest first."""
    found = []
    for name in QUEUES:
        registry = event_queue(redis_client, name).failed_job_registry
        for job_id in registry.get_job_ids():
            try:
                job = Job.fetch(job_id, connection=redis_client, serializer=JSONSerializer)
            except NoSuchJobError:
                continue  # expired meanwhile
            if job.func_name == DRAIN_SHOP:
                continue  # a drain that died holds no change: its batch went back to pending
            change = describe_failure(job, name)
            if shop_id in (None, change.shop_id):
                found.append(change)
    return sorted(found, key=lambda c: c.failed_at.timestamp() if c.failed_at else 0, reverse=True)


def describe_failure(job: Job, queue: str) -> FailedChange:
    shop, kind = describe(job)
    trace = _exc_string(job)
    first = job.args[0] if job.args else None
    entity = first.get("entity_id") if isinstance(first, dict) else (job.args[2] if len(job.args) > 2 else None)
    retries = len(job.retry_intervals or []) - (job.retries_left or 0)
    return FailedChange(job.id, queue, shop, kind, str(entity) if entity is not None else None, operator_message(trace),
                        trace, job.ended_at or job.enqueued_at, max(1, retries + 1))  # fmt: skip


def operator_message(trace: str) -> str:
    """The sentence an operator acts on: the message a drain kept first, or a traceback's last line
    without the exception's module path."""
    text = trace.strip()
    if not text.startswith("Traceback"):
        return text.split("\n\n", 1)[0].strip()
    last = text.splitlines()[-1]
    name, sep, message = last.partition(": ")
    return message.strip() if sep and "." in name or name.endswith(("Error", "Refused", "Rejected")) else last


def _exc_string(job: Job) -> str:
    result = job.latest_result()
    if result is not None and result.exc_string:
        return str(result.exc_string)
    return str(job.exc_info or "")


def requeue_failed(redis_client: redis.Redis, shop_id: str | None = None, kind: str | None = None,
                   job_id: str | None = None, queue: str | None = None) -> list[str]:  # fmt: skip
    """Put matching failed jobs back on their queue, each with its whole retry schedule, in the
    order they failed (the registry's order is by the second they expire at, then by job id)."""
    requeued: list[str] = []
    for name in [q for q in QUEUES if queue in (None, q)]:
        registry = event_queue(redis_client, name).failed_job_registry
        jobs: list[Job] = []
        for found in registry.get_job_ids():
            if job_id not in (None, found):
                continue
            try:
                jobs.append(Job.fetch(found, connection=redis_client, serializer=JSONSerializer))
            except NoSuchJobError:
                continue  # expired meanwhile
        for job in sorted(jobs, key=lambda j: j.ended_at or j.created_at):
            found = job.id
            shop, job_kind = describe(job)
            if shop_id not in (None, shop) or kind not in (None, job_kind) or job.func_name == DRAIN_SHOP:
                continue
            job.retries_left = len(RETRY_INTERVALS)
            job.retry_intervals = list(RETRY_INTERVALS)
            job.save()
            try:
                registry.requeue(job)
            except InvalidJobOperation:
                continue  # another replay took it first
            requeued.append(found)
    return requeued


def describe(job: Job) -> tuple[Any, Any]:
    """The shop and kind of a job: a change's own, or a full-sync page's."""
    first = job.args[0] if job.args else None
    if isinstance(first, dict):
        return first.get("shop_id"), first.get("type")
    return first, "sync"
