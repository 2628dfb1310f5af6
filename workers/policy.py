"""The one failure policy of every job, registered once with the worker (`Worker(exception_handlers=…)`).

- A PermanentError is not retried: retrying cannot help until someone changes something.
- A TransientError that says how long to wait (`Retry-After`) stretches the next retry to it.
- `Busy` (another worker holds the change's entity for the moment) is tried again a few seconds
  later, without using up the retry schedule, up to BUSY_TRIES times.
- A job that fails for good is marked, so that when an operator replays it (the dashboard, the
  API or the CLI alike, whatever they do to the job) and it fails again, it starts again with
  the whole retry schedule.
"""

from __future__ import annotations

import math
from types import TracebackType
from typing import Any

import structlog
from marshmallow import ValidationError
from rq.exceptions import AbandonedJobError
from rq.job import Job

from adapters.errors import Busy, PermanentError, TransientError
from adapters.inbox import BUSY_TRIES, DRAIN_SHOP, RETRY_INTERVALS, busy_wait
from adapters.state import RETRIED, SyncState
from schemas.changes import change_of
from schemas.events import EventSchema, Outcome

log = structlog.get_logger(__name__)
REPLAY_RESETS_RETRIES = "failed_for_good"
BUSY_WAITS = "busy_waits"


def failure_policy(job: Job, exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> bool:
    """RQ exception handler: decide the retry before RQ does; True lets RQ go on as usual."""
    if job.func_name == DRAIN_SHOP and isinstance(exc, AbandonedJobError):
        # a killed worker's drain: no change is lost, its batch returns to pending once its lease
        # lapses and the planner starts another drain (the failed registry keeps the empty job)
        log.warning("drain.interrupted", job_id=job.id, shop_id=job.args[0] if job.args else None)
        return True
    if job.meta.pop(REPLAY_RESETS_RETRIES, None):  # it failed for good before: someone replayed it
        job.retries_left = len(RETRY_INTERVALS)
        job.retry_intervals = list(RETRY_INTERVALS)
    if isinstance(exc, PermanentError):
        job.retries_left = 0
    elif isinstance(exc, Busy) and job.retries_left and int(job.meta.get(BUSY_WAITS, 0)) < BUSY_TRIES:
        wait_while_busy(job)
    elif isinstance(exc, TransientError) and exc.retry_after and job.retries_left:
        wait_at_least(job, exc.retry_after)
    if not job.retries_left:
        job.meta[REPLAY_RESETS_RETRIES] = True
        count_failure(job)
        log.error("job.failed", job_id=job.id, reason=str(exc)[:500], error=exc_type.__name__)
    else:
        count_change(job, RETRIED)
        log.warning("job.retry_later", job_id=job.id, reason=str(exc)[:500], error=exc_type.__name__,
                    retries_left=job.retries_left)  # fmt: skip
    job.save_meta()  # type: ignore[no-untyped-call]
    return True


def wait_while_busy(job: Job) -> None:
    """Retry in a few seconds, the schedule's place kept: RQ takes the next interval and one try
    off, so a wait of `busy_wait()` is put in front of what is left, and one try given back."""
    intervals = list(job.retry_intervals or [0])
    index = min(max(len(intervals) - (job.retries_left or 0), 0), len(intervals))
    job.retry_intervals = [*intervals[:index], busy_wait(), *intervals[index:]]
    job.retries_left = (job.retries_left or 0) + 1
    job.meta[BUSY_WAITS] = int(job.meta.get(BUSY_WAITS, 0)) + 1


def wait_at_least(job: Job, seconds: float) -> None:
    """Stretch the job's next retry to what the server asked for (`Retry-After`)."""
    intervals = list(job.retry_intervals or [0])
    index = min(max(len(intervals) - (job.retries_left or 0), 0), len(intervals) - 1)
    intervals[index] = max(intervals[index], math.ceil(seconds))
    job.retry_intervals = intervals


def count_failure(job: Job) -> None:
    """A change's job failed for good: counted for its shop, for operators."""
    first = count_change(job, Outcome.FAILED)
    if first is None:
        return
    seconds, micros = job.connection.time()
    state = SyncState(job.connection)
    state.record_failure(first["shop_id"], int(seconds) * 1000 + int(micros) // 1000, str(first.get("entity_id")))


def count_change(job: Job, outcome: str) -> dict[str, Any] | None:
    """Count what became of a change's job for its shop and kind; answers the change's event
    (None for a job that is not one change: a full-sync page reports its error with its run)."""
    first = job.args[0] if job.args else None
    if not isinstance(first, dict) or not first.get("shop_id"):
        return None
    SyncState(job.connection).count(first["shop_id"], outcome, kind=kind_of(first))
    return first


def kind_of(event_json: dict[str, Any]) -> str | None:
    """The kind of entity a change's event is about."""
    try:
        change = change_of(EventSchema().load(event_json))
    except ValidationError:
        return None
    return change.kind if change else None
