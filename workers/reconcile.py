"""Reconciliation: webhooks get lost, so every RECONCILE_INTERVAL each connection pulls what
changed since its watermark, from KiotViet and from Abaha, and feeds it through the same path
as a webhook (the inbox, then the same handlers, version guard and echo rules).

A watermark moves to the start of the pull minus a margin, so a change made during a pull (or
stamped by a clock a little behind ours) is pulled again next time rather than skipped; the
repeat is harmless, the version guard and the inbox's dedupe see to that.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from adapters.budget import BACKGROUND
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
PRODUCTS, CATEGORIES = kv.ProductSchema(many=True), kv.CategorySchema(many=True)
CUSTOMERS, ORDERS, STOCK = kv.CustomerSchema(many=True), kv.OrderSchema(many=True), kv.StockSchema()
ABAHA_ORDERS, ABAHA_CUSTOMERS = abaha_schemas.OrderSchema(many=True), abaha_schemas.CustomerSchema(many=True)
TICK = "workers.reconcile.reconcile_tick"


def tick_seconds(services: Services) -> int:
    return max(1, min(TICK_SECONDS, services.settings.reconcile_interval))


def keep_ticking(services: Services) -> None:
    """Start the planner unless one is alive (any process may call this; one wins)."""
    alive_for = tick_seconds(services) * 3
    if services.settings.reconcile_interval and services.redis.set(TICK_KEY, "1", nx=True, ex=alive_for):
        event_queue(services.redis, SYNC_QUEUE).enqueue(TICK, result_ttl=60, description="reconcile planner")


def reconcile_tick() -> dict[str, Any]:
    """Enqueue a reconciliation for each connection that is due, then plan the next tick."""
    services = process_services()
    interval = services.settings.reconcile_interval
    if not interval:
        services.redis.delete(TICK_KEY)
        return {"stopped": True}
    queue = event_queue(services.redis, SYNC_QUEUE)
    due = []
    for connection in services.connections.all():
        # one pull per connection per interval, however many ticks and workers there are
        if services.redis.set(f"sync:reconcile:{connection.shop_id}:due", "1", nx=True, ex=interval):
            queue.enqueue(RECONCILE_SHOP, connection.shop_id, result_ttl=3600,
                          description=f"reconcile shop={connection.shop_id}")  # fmt: skip
            due.append(connection.shop_id)
    services.redis.set(TICK_KEY, "1", ex=tick_seconds(services) * 3)
    queue.enqueue_in(timedelta(seconds=tick_seconds(services)), TICK, result_ttl=60, description="reconcile planner")
    return {"enqueued": due}


def reconcile_shop(shop_id: str) -> dict[str, Any]:
    """RQ entry: pull one shop's changes from both sides into the inbox."""
    services = process_services()
    ctx = shop_context(services, shop_id, priority=BACKGROUND)
    if ctx is None:
        return {"outcome": "not connected"}
    structlog.contextvars.bind_contextvars(shop_id=shop_id)
    try:
        pulled = {name: pull(services, ctx, name, read) for name, read in PULLS.items()}
    except BudgetExhausted as exc:
        services.redis.delete(f"sync:reconcile:{shop_id}:due")  # try again at a later tick
        log.info("reconcile.waiting_for_budget", seconds=exc.retry_after)
        return {"outcome": "waiting"}
    finally:
        structlog.contextvars.clear_contextvars()
    log.info("reconcile.done", **pulled)
    return {"outcome": "done", **pulled}


def pull(
    services: Services, ctx: ShopContext, name: str, read: Callable[[ShopContext, str], Iterator[list[Event]]]
) -> int:
    """Feed everything `read` finds since the watermark to the inbox; then move the watermark."""
    marks = Watermarks(services.redis)
    started = datetime.now(UTC)
    since = marks.get(ctx.connection.shop_id, name) or ctx.connection.saved_at or iso_utc(started - MARGIN)
    count = 0
    for events in read(ctx, since):
        count += services.inbox.accept(events)
    marks.set(ctx.connection.shop_id, name, iso_utc(started - MARGIN))
    return count


def _event(
    ctx: ShopContext, source: str, kind: str, entity_id: str, version: str | None, data: dict[str, Any]
) -> Event:
    received = iso_utc(datetime.now(UTC))
    version = version or received
    return Event(
        id=event_id("reconcile", ctx.connection.shop_id, source, kind, entity_id, version),
        source=source, type=kind, shop_id=ctx.connection.shop_id, entity_id=entity_id, version=version,
        received_at=received, data=plain_json(data),
    )  # fmt: skip


def _kiotviet_pages(ctx: ShopContext, path: str, since: str, **params: Any) -> Iterator[dict[str, Any]]:
    yield from ctx.kiotviet.pages(path, {"lastModifiedFrom": since, **params})


def read_products(ctx: ShopContext, since: str) -> Iterator[list[Event]]:
    for page in _kiotviet_pages(ctx, "/products", since, includeInventory="true", includeRemoveIds="true"):
        events = []
        for product in PRODUCTS.load(page.get("data") or []):
            events.append(
                _event(ctx, "kiotviet", "product.update", str(product.id), product.modified_date, _json(product))
            )
        for removed in read_removed_ids(page):
            events.append(_event(ctx, "kiotviet", "product.delete", str(removed), None, {"id": removed}))
        yield events


def read_stock(ctx: ShopContext, since: str) -> Iterator[list[Event]]:
    branch = ctx.connection.branch_id
    for page in _kiotviet_pages(ctx, "/productOnHands", since, branchIds=branch):
        events = []
        for item in page.get("data") or []:
            for row in kv.lower_keys(item).get("inventories") or []:
                if int(row.get("branchid", 0)) == branch:
                    stock = STOCK.load({**row, "productid": item.get("id"), "productcode": item.get("code"),
                                                   "modifieddate": item.get("modifiedDate")})  # fmt: skip
                    entity = f"{stock.product_id}:{branch}"
                    events.append(_event(ctx, "kiotviet", "stock.update", entity, stock.modified_date, _json(stock)))
        yield events


def read_categories(ctx: ShopContext, since: str) -> Iterator[list[Event]]:
    for page in _kiotviet_pages(ctx, "/categories", since, includeRemoveIds="true"):
        events = [_event(ctx, "kiotviet", "category.update", str(c.id), c.modified_date, _json(c))
                  for c in CATEGORIES.load(page.get("data") or [])]  # fmt: skip
        events += [_event(ctx, "kiotviet", "category.delete", str(r), None, {"id": r}) for r in read_removed_ids(page)]
        yield events


def read_customers(ctx: ShopContext, since: str) -> Iterator[list[Event]]:
    for page in _kiotviet_pages(ctx, "/customers", since):
        yield [_event(ctx, "kiotviet", "customer.update", str(c.id), c.modified_date, _json(c))
               for c in CUSTOMERS.load(page.get("data") or [])]  # fmt: skip


def read_kiotviet_orders(ctx: ShopContext, since: str) -> Iterator[list[Event]]:
    for page in _kiotviet_pages(ctx, "/orders", since, branchIds=ctx.connection.branch_id):
        yield [_event(ctx, "kiotviet", "order.update", str(o.id), o.modified_date, _json(o))
               for o in ORDERS.load(page.get("data") or [])]  # fmt: skip


def read_abaha_orders(ctx: ShopContext, since: str) -> Iterator[list[Event]]:
    """Orders Abaha never posted (or we never stored) become `order.updated`: made if missing."""
    for page in ctx.abaha.changed_since("/orders", since):
        orders = ABAHA_ORDERS.load(page)
        yield [_event(ctx, "abaha", "order.updated", str(o.id), o.updated_at, _json(o)) for o in orders]


def read_abaha_customers(ctx: ShopContext, since: str) -> Iterator[list[Event]]:
    for page in ctx.abaha.changed_since("/customers", since):
        customers = ABAHA_CUSTOMERS.load(page)
        yield [_event(ctx, "abaha", "customer.updated", str(c.id), c.updated_at, _json(c)) for c in customers]


def _json(entity: Any) -> dict[str, Any]:
    data: dict[str, Any] = asdict(entity)
    return data


PULLS: dict[str, Callable[[ShopContext, str], Iterator[list[Event]]]] = {
    "kiotviet:categories": read_categories,
    "kiotviet:products": read_products,
    "kiotviet:stock": read_stock,
    "kiotviet:customers": read_customers,
    "kiotviet:orders": read_kiotviet_orders,
    "abaha:orders": read_abaha_orders,
    "abaha:customers": read_abaha_customers,
}
