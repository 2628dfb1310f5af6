"""Reconciliation: webhooks get lost, so every RECONCILE_INTERVAL each connection pulls what
changed since its watermark, from KiotViet and from Abaha, and feeds it through the same path
as a webhook (the inbox, then the same handlers, version guard and echo rules).

A watermark moves, once a pull is complete, to the pull's start minus a margin, so a change
made during a pull (or stamped by a clock a little behind ours) is pulled again rather than
skipped; the repeat is harmless (the inbox drops an entity version already pulled). A pull cut
short (the shop's request budget ran out) keeps a checkpoint and goes on from there next time.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from marshmallow import Schema, ValidationError

from adapters.budget import BACKGROUND
from adapters.errors import SyncError
from adapters.inbox import SYNC_QUEUE, event_queue
from adapters.kiotviet import BudgetExhausted
from adapters.syncruns import Watermarks
from schemas import abaha as abaha_schemas
from schemas import kiotviet as kv
from schemas.events import Event, event_id, iso_utc, plain_json
from schemas.kiotviet import read_removed_ids
from wiring import Services
from workers.context import ShopContext, process_services, shop_context

log = structlog.get_logger(__name__)
MARGIN = timedelta(minutes=2)
TICK_SECONDS = 30
TICK_KEY = "sync:reconcile:ticking"
RECONCILE_SHOP = "workers.reconcile.reconcile_shop"
TICK = "workers.reconcile.reconcile_tick"
RECONCILE_JOB_SECONDS = 1800
# A reader yields, page by page, the events found and the position the next page starts at.
Reader = Callable[[ShopContext, str, int], Iterator[tuple[list[Event], int]]]


def tick_seconds(services: Services) -> int:
    return max(1, min(TICK_SECONDS, services.settings.reconcile_interval))


def keep_ticking(services: Services) -> None:
    """Start the planner unless one is alive (any process may call this; one wins)."""
    token = uuid.uuid4().hex
    alive_for = tick_seconds(services) * 3
    if services.settings.reconcile_interval and services.redis.set(TICK_KEY, token, nx=True, ex=alive_for):
        event_queue(services.redis, SYNC_QUEUE).enqueue(TICK, token, result_ttl=60, description="reconcile planner")


def reconcile_tick(token: str) -> dict[str, Any]:
    """Enqueue a reconciliation for each connection that is due, then plan the next tick. A
    planner whose claim another one took over (it was held up too long) stops."""
    services = process_services()
    interval = services.settings.reconcile_interval
    holder = services.redis.get(TICK_KEY)
    if not interval or (holder is not None and holder.decode() != token):  # type: ignore[union-attr]
        return {"stopped": True}
    queue = event_queue(services.redis, SYNC_QUEUE)
    due = []
    for connection in services.connections.all():
        # one pull per connection per interval, however many ticks and workers there are
        if services.redis.set(f"sync:reconcile:{connection.shop_id}:due", "1", nx=True, ex=interval):
            queue.enqueue(RECONCILE_SHOP, connection.shop_id, result_ttl=3600, job_timeout=RECONCILE_JOB_SECONDS,
                          description=f"reconcile shop={connection.shop_id}")  # fmt: skip
            due.append(connection.shop_id)
    services.redis.set(TICK_KEY, token, ex=tick_seconds(services) * 3)
    queue.enqueue_in(timedelta(seconds=tick_seconds(services)), TICK, token, result_ttl=60,
                     description="reconcile planner")  # fmt: skip
    return {"enqueued": due}


def reconcile_shop(shop_id: str) -> dict[str, Any]:
    """RQ entry: pull one shop's changes from both sides into the inbox. One source failing
    does not stop the others; it is reported with the connection and tried again next time."""
    services = process_services()
    ctx = shop_context(services, shop_id, priority=BACKGROUND)
    if ctx is None:
        return {"outcome": "not connected"}
    structlog.contextvars.bind_contextvars(shop_id=shop_id)
    pulled: dict[str, Any] = {}
    try:
        for name, read in PULLS.items():
            try:
                pulled[name] = pull(services, ctx, name, read)
            except BudgetExhausted as exc:
                services.redis.delete(f"sync:reconcile:{shop_id}:due")  # go on at a later tick
                log.info("reconcile.waiting_for_budget", pull=name, seconds=exc.retry_after)
                return {"outcome": "waiting", **pulled}
            except SyncError as exc:
                pulled[name] = "failed"
                ctx.state.report(shop_id, f"reconciliation of {name} failed, tried again next time: {exc}")
                log.warning("reconcile.pull_failed", pull=name, error=str(exc))
        log.info("reconcile.done", **pulled)
        return {"outcome": "done", **pulled}
    finally:
        structlog.contextvars.clear_contextvars()


def pull(services: Services, ctx: ShopContext, name: str, read: Reader) -> int:
    """Feed what `read` finds since the watermark to the inbox, page by page, keeping a
    checkpoint; then move the watermark. Answers how many events were new."""
    marks, shop = Watermarks(services.redis), ctx.connection.shop_id
    checkpoint = marks.checkpoint(shop, name) or {
        "since": marks.get(shop, name) or ctx.connection.saved_at or iso_utc(datetime.now(UTC) - MARGIN),
        "started": iso_utc(datetime.now(UTC)),
        "position": 0,
    }
    count = 0
    for events, position in read(ctx, checkpoint["since"], checkpoint["position"]):
        count += services.inbox.accept(events)
        marks.save_checkpoint(shop, name, {**checkpoint, "position": position})
    marks.finish(shop, name, iso_utc(datetime.fromisoformat(checkpoint["started"]) - MARGIN))
    return count


def _event(ctx: ShopContext, source: str, kind: str, entity_id: str, version: str | None, data: Any) -> Event:
    received = iso_utc(datetime.now(UTC))
    version = version or received
    return Event(
        id=event_id("reconcile", ctx.connection.shop_id, source, kind, entity_id, version),
        source=source, type=kind, shop_id=ctx.connection.shop_id, entity_id=entity_id, version=version,
        received_at=received, data=plain_json(asdict(data) if not isinstance(data, dict) else data),
    )  # fmt: skip


def load_each(schema: Schema, items: list[Any], ctx: ShopContext, what: str) -> list[Any]:
    """Each item that reads; one that does not is reported and skipped, not the whole page."""
    loaded = []
    for item in items:
        try:
            loaded.append(schema.load(item))
        except ValidationError as exc:
            ident = item.get("id") if isinstance(item, dict) else None
            ctx.state.report(ctx.connection.shop_id, f"reconciliation skipped {what} {ident}: {exc.messages}")
    return loaded


def _kiotviet(
    ctx: ShopContext, path: str, since: str, start: int, **params: Any
) -> Iterator[tuple[dict[str, Any], int]]:
    return ctx.kiotviet.pages_from(path, {"lastModifiedFrom": since, **params}, start)


def read_products(ctx: ShopContext, since: str, start: int) -> Iterator[tuple[list[Event], int]]:
    for page, position in _kiotviet(ctx, "/products", since, start, includeInventory="true", includeRemoveIds="true"):
        products = load_each(PRODUCT, page.get("data") or [], ctx, "KiotViet product")
        events = [_event(ctx, "kiotviet", "product.update", str(p.id), p.modified_date, p) for p in products]
        events += [_event(ctx, "kiotviet", "product.delete", str(r), None, {"id": r}) for r in read_removed_ids(page)]
        yield events, position


def read_stock(ctx: ShopContext, since: str, start: int) -> Iterator[tuple[list[Event], int]]:
    branch = ctx.connection.branch_id
    for page, position in _kiotviet(ctx, "/productOnHands", since, start, branchIds=branch):
        rows = [{**row, "productid": item.get("id"), "productcode": item.get("code"),
                 "modifieddate": item.get("modifiedDate")}
                for item in page.get("data") or [] for row in kv.lower_keys(item).get("inventories") or []
                if str(row.get("branchid")) == str(branch)]  # fmt: skip
        stocks = load_each(STOCK, rows, ctx, "KiotViet stock row")
        yield (
            [_event(ctx, "kiotviet", "stock.update", f"{s.product_id}:{branch}", s.modified_date, s) for s in stocks],
            position,
        )


def read_categories(ctx: ShopContext, since: str, start: int) -> Iterator[tuple[list[Event], int]]:
    for page, position in _kiotviet(ctx, "/categories", since, start, includeRemoveIds="true"):
        categories = load_each(CATEGORY, page.get("data") or [], ctx, "KiotViet category")
        events = [_event(ctx, "kiotviet", "category.update", str(c.id), c.modified_date, c) for c in categories]
        events += [_event(ctx, "kiotviet", "category.delete", str(r), None, {"id": r}) for r in read_removed_ids(page)]
        yield events, position


def read_customers(ctx: ShopContext, since: str, start: int) -> Iterator[tuple[list[Event], int]]:
    for page, position in _kiotviet(ctx, "/customers", since, start):
        customers = load_each(CUSTOMER, page.get("data") or [], ctx, "KiotViet customer")
        yield [_event(ctx, "kiotviet", "customer.update", str(c.id), c.modified_date, c) for c in customers], position


def read_kiotviet_orders(ctx: ShopContext, since: str, start: int) -> Iterator[tuple[list[Event], int]]:
    for page, position in _kiotviet(ctx, "/orders", since, start, branchIds=ctx.connection.branch_id):
        orders = load_each(ORDER, page.get("data") or [], ctx, "KiotViet order")
        yield [_event(ctx, "kiotviet", "order.update", str(o.id), o.modified_date, o) for o in orders], position


def read_abaha_orders(ctx: ShopContext, since: str, start: int) -> Iterator[tuple[list[Event], int]]:
    """Orders Abaha never posted (or we never stored) become `order.updated`: made if missing."""
    for items, following in ctx.abaha.changed_since("/orders", since, start or 1):
        orders = load_each(ABAHA_ORDER, items, ctx, "Abaha order")
        yield [_event(ctx, "abaha", "order.updated", str(o.id), o.updated_at, o) for o in orders], following


def read_abaha_customers(ctx: ShopContext, since: str, start: int) -> Iterator[tuple[list[Event], int]]:
    for items, following in ctx.abaha.changed_since("/customers", since, start or 1):
        customers = load_each(ABAHA_CUSTOMER, items, ctx, "Abaha customer")
        yield [_event(ctx, "abaha", "customer.updated", str(c.id), c.updated_at, c) for c in customers], following


PRODUCT, CATEGORY, CUSTOMER, ORDER, STOCK = (
    kv.ProductSchema(), kv.CategorySchema(), kv.CustomerSchema(), kv.OrderSchema(), kv.StockSchema())  # fmt: skip
ABAHA_ORDER, ABAHA_CUSTOMER = abaha_schemas.OrderSchema(), abaha_schemas.CustomerSchema()
PULLS: dict[str, Reader] = {
    "kiotviet:categories": read_categories,
    "kiotviet:products": read_products,
    "kiotviet:stock": read_stock,
    "kiotviet:customers": read_customers,
    "kiotviet:orders": read_kiotviet_orders,
    "abaha:orders": read_abaha_orders,
    "abaha:customers": read_abaha_customers,
}
