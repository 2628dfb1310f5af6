"""RQ entry points of the change path.

`drain_shop` applies one batch of a shop's pending changes (at most BATCH_LIMIT entities, one
lease), then queues itself again at the back of the queue if more are pending: a storm of one
shop is drained batch by batch between other shops' batches, and a lone change is applied at
once, never held back waiting for a batch to fill. One batch of a shop runs at a time, so a
storm takes one worker, never all of them: a drain that finds another batch of its shop running
leaves the shop to it (that batch queues the next drain as it ends) and looks again once, when
the running mark would lapse if its worker had died.

`apply_change` applies one change alone: a change that failed in a batch (retried on RQ's
schedule, or kept in RQ's failed registry with the operator's message until someone replays it).
"""

from __future__ import annotations

import re
import threading
import traceback
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from rq import get_current_job
from rq.job import Job, JobStatus
from rq.results import Result as JobResult

from adapters import keys
from adapters.budget import WEBHOOK
from adapters.errors import Busy, TransientError
from adapters.inbox import APPLY_CHANGE, FAILED_TTL, JOB_SECONDS, RETRY_INTERVALS, busy_wait, event_queue, job_retry
from adapters.pending import Action, Meta, Pending, Release
from adapters.state import RETRIED
from schemas.changes import Change, Mode, change_of
from schemas.events import Event, EventSchema, Outcome, event_id
from wiring import Services
from workers.appliers import APPLIERS
from workers.apply import BatchOutcome, Result, Work, apply_batch
from workers.context import process_services, shop_context

log = structlog.get_logger(__name__)
SAFE_JOB_ID = re.compile(r"^[A-Za-z0-9_-]+$")
BATCH_LIMIT = 500
LEASE_MS = 30_000  # renewed every RENEW_SECONDS while the batch is applied; a dead worker's runs out
RUNNING_MS = 10_000  # the shop's running mark, renewed with the lease: a dead worker holds its shop this long
RENEW_SECONDS = 3
MAX_BACKOFF_SECONDS = 600


def drain_shop(shop_id: str, look: bool = False) -> dict[str, Any]:
    """Apply one batch of the shop's pending changes, unless another batch of the shop runs.
    `look`: the look again after finding one running (the last, whatever it finds)."""
    services = process_services()
    batch = services.pending.take(shop_id, BATCH_LIMIT, LEASE_MS, RUNNING_MS)
    if batch.busy_ms:
        if not look:
            services.inbox.enqueue_drain(shop_id, batch.busy_ms / 1000 + 1, look=True)
        return {"entities": 0, "busy": True}
    if not batch.entries:
        return {"entities": 0}
    bound = structlog.contextvars.bind_contextvars(shop_id=shop_id, batch_id=batch.batch_id)
    try:
        with renewing(services, shop_id, batch.batch_id):
            done, follow_ups = run(batch.entries, batch.taken_at, services, shop_id, pending_left=batch.pending_left)
        left = services.pending.finish(shop_id, batch.batch_id, releases(batch.entries, done, services))
        if done.deferred:  # what the batch found to do waits with the rest, for the backoff's drain
            services.pending.accept(shop_id, follow_ups)
        else:
            services.inbox.accept_changes(shop_id, follow_ups)
        counted = count(services, shop_id, done, batch.entries, trail=True)
        if done.deferred:
            wait = backoff(services, shop_id, done.retry_after)
            log.warning("drain.deferred", entities=len(done.deferred), seconds=wait)
            services.inbox.enqueue_drain(shop_id, wait)
        else:
            services.redis.delete(keys.shop_key(shop_id, keys.BACKOFF))
            if left or done.postponed:
                services.inbox.wake(shop_id)
        kinds = dict(Counter(e.kind for e in batch.entries))
        log.info("drain.done", entities=len(batch.entries), kinds=kinds, pending_left=left, **counted)
        return {"entities": len(batch.entries), **counted}
    finally:
        structlog.contextvars.reset_contextvars(**bound)


def apply_change(event_json: dict[str, Any], read: bool = False) -> dict[str, Any]:
    """Apply one change alone; fail as its applier says (RQ's failure handling takes over)."""
    job = get_current_job()
    event: Event = EventSchema().load(event_json)
    bound = structlog.contextvars.bind_contextvars(event_id=event.id, job_id=job.id if job else None,
                                                   shop_id=event.shop_id)  # fmt: skip
    try:
        services = process_services()
        outcome = apply_alone(event, read, services)
        log.info("change.done", outcome=outcome, entity_id=event.entity_id, event_type=event.type)
        return {"outcome": str(outcome)}
    finally:
        structlog.contextvars.reset_contextvars(**bound)


def apply_alone(event: Event, read: bool, services: Services) -> Outcome:
    change = change_of(event)
    if change is None:
        return Outcome.IGNORED
    lease_id, now, leased = services.pending.lease(event.shop_id, [change.entity], LEASE_MS)
    if change.entity not in leased:
        raise Busy(f"{change.entity} is being applied by another worker")
    entry = pending_of(change, now)
    if read:
        entry = Pending(entry.entity, entry.event, replace(entry.meta, signal_at=now))
    try:
        done, follow_ups = run([entry], now, services, event.shop_id)
    except BaseException:
        services.pending.finish(event.shop_id, lease_id, [Release(change.entity, Action.DROP)])
        raise
    result = done.results.get(change.entity)
    applied = result.applied if result and result.outcome not in (Outcome.FAILED, Outcome.RETRYING) else None
    services.pending.finish(event.shop_id, lease_id, [Release(change.entity, Action.DONE, applied)])
    services.inbox.accept_changes(event.shop_id, follow_ups)
    if done.deferred or done.postponed:
        raise TransientError(f"{change.entity}: KiotViet or Abaha is unavailable for now", done.retry_after)
    assert result is not None
    if result.error is not None and result.outcome in (Outcome.FAILED, Outcome.RETRYING):
        raise result.error
    services.state.count(event.shop_id, result.outcome, kind=change.kind)
    if result.outcome is Outcome.APPLIED:
        now_ms = redis_ms(services)
        services.state.record_writes(event.shop_id, [max(0.0, (now_ms - entry.meta.first_at) / 1000)], now_ms)
    return result.outcome


def apply_now(services: Services, shop_id: str, changes: Sequence[Change], *, repair: bool = False,
              priority: str = WEBHOOK) -> BatchOutcome:  # fmt: skip
    """Apply changes at once under a lease (a full-sync page): what another batch holds now, or
    what cannot be applied for the moment, becomes pending instead, so nothing is lost."""
    unique = list({c.entity: c for c in changes}.values())
    lease_id, now, leased = services.pending.lease(shop_id, [c.entity for c in unique], LEASE_MS)
    entries = [pending_of(c, now) for c in unique if c.entity in leased]
    later = [c for c in unique if c.entity not in leased]
    try:
        with renewing(services, shop_id, lease_id):
            done, follow_ups = run(entries, now, services, shop_id, repair=repair, priority=priority)
        deferred = {e.entity for e in done.deferred + done.postponed}
        later += [c for c in unique if c.entity in deferred]
        done_entries = [e for e in entries if e.entity not in deferred]
        services.pending.finish(shop_id, lease_id, releases(done_entries, done, services))
    except BaseException:
        services.pending.finish(shop_id, lease_id, [Release(e.entity, Action.DROP) for e in entries])
        services.inbox.accept_changes(shop_id, [c for c in unique if c.entity in leased])
        raise
    services.inbox.accept_changes(shop_id, later + follow_ups)
    count(services, shop_id, done, entries)
    return done


def pending_of(change: Change, now: int) -> Pending:
    """A change as a batch entry, as if it had just become pending."""
    order = None if change.mode is Mode.SIGNAL else change.order
    signal = now if change.mode is Mode.SIGNAL else 0
    return Pending(change.entity, change.event, Meta(change.mode, order, change.fingerprint, signal, 1, now))


def run(entries: Sequence[Pending], taken_at: int, services: Services, shop_id: str, *, repair: bool = False,
        priority: str = WEBHOOK, pending_left: int = 0) -> tuple[BatchOutcome, list[Change]]:  # fmt: skip
    """Apply entries with the shop's clients; a shop no longer connected ignores them."""
    ctx = shop_context(services, shop_id, priority)
    if ctx is None:
        log.info("drain.shop_not_connected")
        return BatchOutcome(results={e.entity: Result(Outcome.IGNORED) for e in entries}), []
    work = Work(ctx, taken_at, repair=repair, pending_left=pending_left, holds=frozenset(e.entity for e in entries))
    return apply_batch(entries, work, APPLIERS), work.follow_ups


def releases(entries: Sequence[Pending], done: BatchOutcome, services: Services) -> list[Release]:
    """Each entity released with what became of it; failures go to jobs of their own."""
    deferred = {e.entity for e in done.deferred + done.postponed}
    out = []
    for entry in entries:
        if entry.entity in deferred:
            out.append(Release(entry.entity, Action.BACK))
            continue
        result = done.results[entry.entity]
        if result.outcome is Outcome.FAILED:
            keep_failed(entry, result.error, services)
            out.append(Release(entry.entity, Action.DROP))
        elif result.outcome is Outcome.RETRYING:
            retry_alone(entry, result.error, services)
            out.append(Release(entry.entity, Action.DROP))
        else:
            out.append(Release(entry.entity, Action.DONE, result.applied))
    return out


def single_job(entry: Pending, services: Services) -> Job:
    queue = event_queue(services.redis)
    read = entry.meta.signal_at > 0
    return queue.create_job(
        APPLY_CHANGE,
        args=(entry.event.to_json(),),
        kwargs={"read": read},
        job_id=entry.event.id,
        description=f"{entry.event.source} {entry.event.type} {entry.event.entity_id} shop={entry.event.shop_id}",
        retry=job_retry(),
        timeout=JOB_SECONDS,
        result_ttl=24 * 3600,
        failure_ttl=FAILED_TTL,
    )


def job_id_of(event: Event) -> str:
    """The change's job id: its event id when RQ takes that as an id, else a hash of it."""
    return event.id if SAFE_JOB_ID.match(event.id) else event_id("job", event.id)


def keep_failed(entry: Pending, error: BaseException | None, services: Services) -> None:
    """A permanent failure: in RQ's failed registry with the operator's message first, as a job
    that applies this change alone when replayed."""
    job = single_job(entry, services)
    message = str(error) or type(error).__name__
    trace = "".join(traceback.format_exception(error)) if error is not None else ""
    registry = event_queue(services.redis).failed_job_registry
    exc_string = f"{message}\n\n{trace}"
    job.ended_at = datetime.now(UTC)
    with services.redis.pipeline() as pipe:
        job.set_status(JobStatus.FAILED, pipeline=pipe)
        registry.add(job, ttl=FAILED_TTL, exc_string=exc_string, pipeline=pipe)
        JobResult.create_failure(job, FAILED_TTL, exc_string, worker_name="drain", pipeline=pipe)
        pipe.execute()
    log.error("change.failed", entity=entry.entity, event_id=entry.event.id, failed_job_id=job.id,
              reason=message[:500], error=type(error).__name__)  # fmt: skip


def retry_alone(entry: Pending, error: BaseException | None, services: Services) -> None:
    """A transient failure of this change alone: retried by itself, on RQ's schedule (an entity
    busy elsewhere, a few seconds later with the whole schedule left)."""
    job = single_job(entry, services)
    queue = event_queue(services.redis)
    if isinstance(error, Busy):
        wait: float = busy_wait()
    else:
        wait = max(RETRY_INTERVALS[0], getattr(error, "retry_after", None) or 0)
        job.retries_left = len(RETRY_INTERVALS) - 1  # this first wait is one of them
    queue.schedule_job(job, datetime.now(UTC) + timedelta(seconds=wait))
    log.warning("change.retry_later", entity=entry.entity, event_id=entry.event.id, retry_job_id=job.id,
                seconds=wait, reason=str(error)[:300])  # fmt: skip


def count(services: Services, shop_id: str, done: BatchOutcome, entries: Sequence[Pending] = (), *,
          trail: bool = False) -> dict[str, int]:  # fmt: skip
    """Count what became of each entity; how long each written one took from its arrival; with
    `trail`, a line per write (the end of the trail a delivery's `event_ids` begin: not for the
    pages of a full sync, which no delivery brought)."""
    counted = Counter(result.outcome for result in done.results.values())
    by_kind = Counter((entity.split(":", 1)[0], str(result.outcome)) for entity, result in done.results.items())
    # tried again: alone on RQ's schedule, or with the shop's next drain after backing off
    by_kind.update((entity.split(":", 1)[0], RETRIED) for entity, result in done.results.items()
                   if result.outcome is Outcome.RETRYING)  # fmt: skip
    by_kind.update((entry.kind, RETRIED) for entry in done.deferred)
    services.state.count_kinds(shop_id, by_kind)
    now_ms = redis_ms(services)
    written = [e for e in entries if done.results.get(e.entity, Result(Outcome.IGNORED)).outcome is Outcome.APPLIED]
    lags = [max(0.0, (now_ms - e.meta.first_at) / 1000) for e in written]
    services.state.record_writes(shop_id, lags, now_ms)
    if trail:
        for entry, lag in zip(written, lags, strict=True):
            log.info("change.written", entity=entry.entity, event_id=entry.event.id, lag_seconds=round(lag, 3))
    for entry in entries:
        if done.results.get(entry.entity, Result(Outcome.IGNORED)).outcome is Outcome.FAILED:
            services.state.record_failure(shop_id, now_ms, entry.entity)
    return {str(k): v for k, v in counted.items()}


def redis_ms(services: Services) -> int:
    seconds, micros = services.redis.time()  # type: ignore[misc]
    return int(seconds) * 1000 + int(micros) // 1000


def backoff(services: Services, shop_id: str, retry_after: float | None) -> float:
    """Seconds before the shop's next drain after a transient failure of a whole kind."""
    failures = int(services.redis.incr(keys.shop_key(shop_id, keys.BACKOFF)))  # type: ignore[arg-type]
    services.redis.expire(keys.shop_key(shop_id, keys.BACKOFF), MAX_BACKOFF_SECONDS * 2)
    return float(max(retry_after or 0, min(MAX_BACKOFF_SECONDS, 5 * 2 ** min(failures - 1, 8))))


@contextmanager
def renewing(services: Services, shop_id: str, batch_id: str) -> Iterator[None]:
    """Keep the batch's lease alive while this process works on it."""
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(RENEW_SECONDS):
            try:
                services.pending.renew(shop_id, batch_id, LEASE_MS, RUNNING_MS)
            except Exception:  # a missed renewal only shortens the lease
                log.warning("drain.lease_not_renewed", exc_info=True)

    thread = threading.Thread(target=renew, name="lease-renewer", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
