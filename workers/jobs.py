"""RQ entry points: JSON arguments in, adapters built, the pure core called."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import structlog
from rq import get_current_job
from rq.job import Job

from adapters.errors import PermanentError, TransientError
from schemas.events import Event, EventSchema
from wiring import Services
from workers import customers, orders
from workers.catalog import CATALOG_HANDLERS
from workers.context import ShopContext, process_services, shop_context
from workers.reconcile import keep_ticking

log = structlog.get_logger(__name__)
NOT_APPLIED, IGNORED, FAILED = "not_applied", "ignored", "failed"


def apply_event(event_json: dict[str, Any]) -> dict[str, Any]:
    """Apply one normalized event; the job's result records what happened."""
    event: Event = EventSchema().load(event_json)
    job = get_current_job()
    structlog.contextvars.bind_contextvars(
        event_id=event.id, job_id=job.id if job else None, shop_id=event.shop_id, event_type=event.type
    )
    services = process_services()
    keep_ticking(services)  # restarts reconciliation's planner should its chain have been lost
    try:
        outcome = run_event(event, services)
        services.state.count(event.shop_id, outcome)
        log.info("event.done", outcome=outcome, entity_id=event.entity_id)
        return {"outcome": outcome}
    except PermanentError as exc:
        if job is not None:
            job.retries_left = 0  # retrying cannot help until someone changes something
        services.state.count(event.shop_id, FAILED)
        log.error("event.failed", reason=str(exc), entity_id=event.entity_id)
        raise
    except Exception as exc:
        if job is None or not job.retries_left:
            services.state.count(event.shop_id, FAILED)
        elif isinstance(exc, TransientError) and exc.retry_after:
            wait_at_least(job, exc.retry_after)
        log.warning("event.retry_later", reason=str(exc), error=type(exc).__name__)
        raise
    finally:
        structlog.contextvars.clear_contextvars()


def wait_at_least(job: Job, seconds: float) -> None:
    """Stretch the job's next retry to what the server asked for (`Retry-After`)."""
    intervals = list(job.retry_intervals or [0])
    index = min(max(len(intervals) - (job.retries_left or 0), 0), len(intervals) - 1)
    intervals[index] = max(intervals[index], math.ceil(seconds))
    job.retry_intervals = intervals


def run_event(event: Event, services: Services) -> str:
    """Apply `event` for its shop; the outcome is one of the counted ones."""
    ctx = shop_context(services, event.shop_id)
    if ctx is None:
        log.info("event.shop_not_connected")
        return IGNORED
    return apply(event, ctx)


def not_synced(event: Event, ctx: ShopContext) -> str:
    """Branches are not mirrored, and Abaha keeps customers KiotViet deletes (no delete call)."""
    log.info("event.not_synced_by_design")
    return IGNORED


HANDLERS: dict[tuple[str, str], Callable[[Event, ShopContext], str]] = {
    **{("kiotviet", kind): handler for kind, handler in CATALOG_HANDLERS.items()},
    ("kiotviet", "order.update"): orders.apply_kiotviet_order,
    ("kiotviet", "invoice.update"): orders.apply_kiotviet_invoice,
    ("kiotviet", "customer.update"): customers.apply_kiotviet_customer,
    ("kiotviet", "customer.delete"): not_synced,
    ("kiotviet", "branch.update"): not_synced,
    ("kiotviet", "branch.delete"): not_synced,
    ("abaha", "order.created"): orders.apply_abaha_order,
    ("abaha", "order.updated"): orders.apply_abaha_order,
    ("abaha", "order.status_changed"): orders.ignore_abaha_status_change,
    ("abaha", "customer.created"): customers.apply_abaha_customer,
    ("abaha", "customer.updated"): customers.apply_abaha_customer,
}


def apply(event: Event, ctx: ShopContext) -> str:
    """Dispatch to the handler of the event's type, or park what is not applied yet."""
    handler = HANDLERS.get((event.source, event.type))
    if handler is None:
        ctx.state.park(ctx.connection.shop_id, event.to_json())
        log.info("event.not_yet_applied")
        return NOT_APPLIED
    return handler(event, ctx)
