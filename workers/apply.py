"""Applying a batch of one shop's pending changes: each kind of entity by its own applier, in an
order that writes what others refer to first (a category before its products).

An applier answers a `Result` per entity. A failure of one entity is its result alone; a
transient failure of a whole kind (Abaha or KiotViet unavailable, the shop's request budget
spent) puts that kind's entities back to pending, and any other exception hands each of them to
a job of its own, so one bad item cannot hold back the others.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import structlog

from adapters.errors import PermanentError, TransientError
from adapters.kiotviet import BudgetExhausted
from adapters.pending import Applied, Pending
from schemas.changes import KINDS, Change, Mode
from schemas.events import Outcome, to_micros
from workers.context import ShopContext

log = structlog.get_logger(__name__)


BATCH_SECONDS = 40  # a batch stops starting new entities after this (RQ stops a job at 100 s)
# reads of KiotViet that serve a batch of many entities (a stock count, a storm) stop after this
# once the batch has something to show: the rest of the read goes on in the shop's next batch,
# queued behind other shops' (one shop's storm does not hold a worker for seconds)
SLICE_SECONDS = 0.25


class Postponed(TransientError):
    """The batch ran out of time before this entity: pending again, at once."""


@dataclass(frozen=True)
class Result:
    """What became of one entity, the applied state to record, and the error of a failure."""

    outcome: Outcome
    applied: Applied | None = None
    error: BaseException | None = None


@dataclass
class Work:
    """One batch's collaborators and facts."""

    ctx: ShopContext
    taken_at: int  # Redis ms when the batch was taken: every read made for it is at least this new
    repair: bool = False  # a full sync rewrites what is already at the same version
    pending_left: int = 0  # entities of the shop still pending after this batch was taken
    holds: frozenset[str] = frozenset()  # the entities this batch holds the lease of
    deadline: float = field(default_factory=lambda: time.monotonic() + BATCH_SECONDS)
    slice_end: float = field(default_factory=lambda: time.monotonic() + SLICE_SECONDS)

    def out_of_time(self) -> bool:
        return time.monotonic() > self.deadline

    def slice_over(self) -> bool:
        return time.monotonic() > self.slice_end

    follow_ups: list[Change] = field(default_factory=list)  # changes the batch found to make

    @property
    def shop(self) -> str:
        return self.ctx.connection.shop_id

    @property
    def branch(self) -> int:
        return self.ctx.connection.branch_id

    @property
    def read_order(self) -> int:
        """The version (micros) of a value read for this batch."""
        return self.taken_at * 1000


def read_at_of(entry: Pending, read_now: bool, current: Applied | None, work: Work) -> int:
    """When the source was last read for this entity (Redis ms): now, for a read this batch made;
    before the read, for content a full-sync page or a pull read; else as it was."""
    if read_now:
        return work.taken_at
    if entry.meta.mode is Mode.READ:
        return int(to_micros(entry.event.received_at) // 1000)
    return current.read_at if current else 0


def failure(exc: Exception) -> Result:
    """One entity's failure: a permanent one is kept for the operator, the rest are retried."""
    if isinstance(exc, PermanentError):
        return Result(Outcome.FAILED, error=exc)
    return Result(Outcome.RETRYING, error=exc)


Applier = Callable[[Sequence[Pending], Work], dict[str, Result]]


@dataclass
class BatchOutcome:
    results: dict[str, Result] = field(default_factory=dict)
    deferred: list[Pending] = field(default_factory=list)  # a peer or the budget: later, backing off
    postponed: list[Pending] = field(default_factory=list)  # the batch's time ran out: next batch
    retry_after: float | None = None


def apply_batch(entries: Sequence[Pending], work: Work, appliers: dict[str, Applier]) -> BatchOutcome:
    """Apply every kind of the batch; see the module's docstring for what a failure does."""
    done = BatchOutcome()
    for kind in KINDS:
        group = [e for e in entries if e.kind == kind]
        if group:
            apply_kind(kind, group, work, appliers[kind], done)
    unknown = {e.kind for e in entries} - set(KINDS)
    for entry in entries:
        if entry.kind in unknown:
            done.results[entry.entity] = Result(Outcome.IGNORED)
    return done


def apply_kind(kind: str, group: list[Pending], work: Work, applier: Applier, done: BatchOutcome) -> None:
    try:
        results = applier(group, work)
    except TransientError as exc:
        log.warning("batch.kind_deferred", kind=kind, entities=len(group), reason=str(exc))
        done.deferred += group
        done.retry_after = max(done.retry_after or 0, exc.retry_after or 0) or None
        return
    except Exception as exc:  # a bug or an unforeseen answer: each entity gets a job of its own
        log.exception("batch.kind_failed", kind=kind, entities=len(group))
        results = {e.entity: Result(Outcome.RETRYING, error=exc) for e in group}
    missing = [e.entity for e in group if e.entity not in results]
    if missing:
        raise AssertionError(f"the {kind} applier gave no result for {missing[:5]}")
    for entry in group:
        error = results[entry.entity].error
        if isinstance(error, Postponed):
            done.postponed.append(entry)
        elif isinstance(error, BudgetExhausted):  # the shop's budget, not this entity: later
            done.deferred.append(entry)
            done.retry_after = max(done.retry_after or 0, error.retry_after or 0) or None
        else:
            done.results[entry.entity] = results[entry.entity]
