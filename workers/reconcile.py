"""Reconciliation: webhooks get lost, so every RECONCILE_INTERVAL each connection pulls what
changed since its watermark, from KiotViet and from Abaha, and feeds it to the pending store like
a webhook; it also re-reads the shop's settings and webhooks, so the connection's warnings are
current and a webhook KiotViet dropped is registered again.

Pulls page by key, not by position: ordered by modification time, each page asks for what changed
since the last item seen (a second before, with the items already seen skipped), so an item
edited while the pull runs moves to the end and is met again rather than shifting an unseen item
out of reach. A watermark moves, once a pull is complete, to the pull's start minus a margin; a
pull cut short (the shop's request budget ran out) keeps a checkpoint and goes on from there.
What the pull finds that was applied already (the same version and content) is dropped when it
is accepted, so repeated pulls cost no writes.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

import structlog

from adapters import clock, keys
from adapters.budget import BACKGROUND
from adapters.errors import SyncError
from adapters.inbox import SYNC_QUEUE, event_queue
from adapters.kiotviet import BudgetExhausted
from adapters.syncruns import Watermarks
from schemas.changes import Change, change_of, micros_of, read_change
from schemas.events import Event, event_id, iso_from_ms, iso_utc, plain_json
from schemas.kiotviet import parse_kiotviet_datetime
from wiring import Services
from workers import hooks
from workers.context import ShopContext, process_services, shop_context
from workers.products import sellable
from workers.stock import stock_read

log = structlog.get_logger(__name__)
MARGIN = timedelta(minutes=2)
OVERLAP = timedelta(seconds=1)  # each page asks from a second before the last item seen
TICK_SECONDS = 30
RECONCILE_SHOP = "workers.reconcile.reconcile_shop"
TICK = "workers.reconcile.reconcile_tick"
RECONCILE_JOB_SECONDS = 1800
WAKE_AFTER_MS = 60_000  # pending this long with no drain queued: a lost wake-up, queue one


def tick_seconds(services: Services) -> int:
    return max(1, min(TICK_SECONDS, services.settings.reconcile_interval or TICK_SECONDS))


def keep_ticking(services: Services) -> None:
    """Start the planner unless one is alive (any process may call this; one wins). It runs
    even with reconciliation off: it also wakes drains whose wake-up was lost."""
    token = uuid.uuid4().hex
    if services.redis.set(keys.RECONCILE_TICKING, token, nx=True, ex=tick_seconds(services) * 3):
        event_queue(services.redis, SYNC_QUEUE).enqueue(TICK, token, result_ttl=60, description="planner")


def reconcile_tick(token: str) -> dict[str, Any]:
    """Enqueue a reconciliation for each connection that is due, wake drains whose wake-up was
    lost or whose worker died, then plan the next tick. A planner whose claim another one took
    over (it was held up too long) stops."""
    services = process_services()
    holder = services.redis.get(keys.RECONCILE_TICKING)
    if holder is not None and holder.decode() != token:  # type: ignore[union-attr]
        return {"stopped": True}
    woken = wake_stalled_drains(services)
    interval = services.settings.reconcile_interval
    due = []
    queue = event_queue(services.redis, SYNC_QUEUE)
    for connection in services.connections.all() if interval else []:
        # one pull per connection per interval, however many ticks and workers there are
        if services.redis.set(keys.shop_key(connection.shop_id, keys.RECONCILE_DUE), "1", nx=True, ex=interval):
            queue.enqueue(RECONCILE_SHOP, connection.shop_id, result_ttl=3600, job_timeout=RECONCILE_JOB_SECONDS,
                          description=f"reconcile shop={connection.shop_id}")  # fmt: skip
            due.append(connection.shop_id)
    services.redis.set(keys.RECONCILE_TICKING, token, ex=tick_seconds(services) * 3)
    queue.enqueue_in(timedelta(seconds=tick_seconds(services)), TICK, token, result_ttl=60, description="planner")
    return {"enqueued": due, "woken": woken}


def wake_stalled_drains(services: Services) -> list[str]:
    """Shops whose changes wait with no drain on its way (a wake-up lost between Redis and RQ),
    or whose batch's worker died: queue a drain (it takes the dead worker's batch back)."""
    seconds, micros = services.redis.time()  # type: ignore[misc]
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    shops = set(services.pending.waiting_shops(now_ms - WAKE_AFTER_MS)) | set(services.pending.expired_leases(now_ms))
    for shop_id in sorted(shops):
        services.inbox.wake(shop_id)
    return sorted(shops)


def reconcile_shop(shop_id: str) -> dict[str, Any]:
    """RQ entry: pull one shop's changes from both sides. One source failing does not stop the
    others; it is reported with the connection and tried again next time."""
    services = process_services()
    ctx = shop_context(services, shop_id, priority=BACKGROUND)
    if ctx is None:
        return {"outcome": "not connected"}
    bound = structlog.contextvars.bind_contextvars(shop_id=shop_id)
    pulled: dict[str, Any] = {}
    try:
        for name, read in PULLS.items():
            try:
                pulled[name] = pull(services, ctx, name, read)
            except BudgetExhausted as exc:
                services.redis.delete(keys.shop_key(shop_id, keys.RECONCILE_DUE))  # go on at a later tick
                log.info("reconcile.waiting_for_budget", pull=name, seconds=exc.retry_after)
                return {"outcome": "waiting", **pulled}
            except SyncError as exc:
                pulled[name] = "failed"
                ctx.state.report(shop_id, f"reconciliation of {name} failed, tried again next time: {exc}")
                log.warning("reconcile.pull_failed", pull=name, error=str(exc))
        try:
            pulled["warnings"] = refresh_webhooks(services, ctx)
        except SyncError as exc:  # the budget included: the next pull looks again
            log.warning("reconcile.webhooks_not_checked", error=str(exc))
        log.info("reconcile.done", **pulled)
        return {"outcome": "done", **pulled}
    finally:
        structlog.contextvars.reset_contextvars(**bound)


# A reader yields, page by page, the changes found and where to go on from.
Reader = Callable[[ShopContext, dict[str, Any]], Iterator[tuple[list[Change], dict[str, Any]]]]


def pull(services: Services, ctx: ShopContext, name: str, read: Reader) -> int:
    """Feed what `read` finds since the watermark to the inbox, keeping a checkpoint after each
    page; then move the watermark. Answers how many changes were new."""
    marks, shop = Watermarks(services.redis), ctx.connection.shop_id
    checkpoint = marks.checkpoint(shop, name) or {
        "since": marks.get(shop, name) or ctx.connection.saved_at or iso_utc(clock.now() - MARGIN),
        "started": iso_utc(clock.now()),
    }
    checkpoint.setdefault("boundary", checkpoint["since"])
    new = 0
    for changes, position in read(ctx, checkpoint):
        new += services.inbox.accept_changes(shop, changes).new
        checkpoint = {**checkpoint, **position}
        marks.save_checkpoint(shop, name, checkpoint)
    marks.finish(shop, name, iso_utc(datetime.fromisoformat(checkpoint["started"]) - MARGIN))
    return new


def keyset(ctx: ShopContext, fetch: Callable[[str, int], Any], key: Callable[[Any], tuple[str | None, int]],
           checkpoint: dict[str, Any]) -> Iterator[tuple[list[Any], dict[str, Any]]]:  # fmt: skip
    """Pages of items changed since the checkpoint's boundary, oldest change first, each item
    once: ask from a second before the last change seen, skip what was seen at or after it.
    An item that does not read is reported with the connection; the rest of its page goes on."""
    boundary: str = checkpoint["boundary"]
    seen: set[str] = set(checkpoint.get("seen") or ())
    offset: int = int(checkpoint.get("offset") or 0)
    while True:
        asked = iso_utc(parse_kiotviet_datetime(boundary) - OVERLAP)
        page = fetch(asked, offset)
        for problem in page.problems:
            ctx.state.report(ctx.connection.shop_id, f"reconciliation skipped an item that does not read: {problem}")
        fresh = [item for item in page.items if _mark(key(item)) not in seen]
        stamps = [stamp for stamp in (key(item)[0] for item in page.items) if stamp]
        latest = max(stamps, default=None, key=_moment)
        following = page.next_offset(offset)
        if following is None:
            yield fresh, {"boundary": boundary, "seen": [], "offset": 0}
            return
        if latest is not None and _moment(latest) > _moment(boundary):
            boundary, offset = latest, 0  # go on from the newest change seen
            seen = {_mark(key(i)) for i in page.items if _moment(key(i)[0] or boundary) >= _moment(latest) - OVERLAP}
        else:
            offset = following  # a whole page at one moment: page on by position
            seen |= {_mark(key(i)) for i in page.items}
        yield fresh, {"boundary": boundary, "seen": sorted(seen), "offset": offset}


def _mark(key: tuple[str | None, int]) -> str:
    return f"{key[1]}@{key[0]}"


def _moment(text: str) -> datetime:
    return parse_kiotviet_datetime(text)


def _kiotviet_change(ctx: ShopContext, kind: str, entity: str, item: Any, version: str | None) -> Change:
    shop, received = ctx.connection.shop_id, iso_utc(clock.now())
    data = plain_json(asdict(item))
    event = Event(
        id=event_id("reconcile", shop, entity, version),
        source="kiotviet",
        type=kind,
        shop_id=shop,
        entity_id=entity.split(":", 1)[1],
        version=version or received,
        received_at=received,
        data=data,
    )
    return read_change(event, entity.split(":", 1)[0], micros_of(version, 0))


def _removed(ctx: ShopContext, kind: str, ids: tuple[int, ...]) -> list[Change]:
    shop, received = ctx.connection.shop_id, iso_utc(clock.now())
    events = [Event(id=event_id("reconcile", shop, kind, i, received), source="kiotviet", type=kind, shop_id=shop,
                    entity_id=str(i), version=received, received_at=received, data={"id": i}) for i in ids]  # fmt: skip
    return [c for c in (change_of(e) for e in events) if c is not None]


def read_products(ctx: ShopContext, checkpoint: dict[str, Any]) -> Iterator[tuple[list[Change], dict[str, Any]]]:
    removed: list[int] = []

    def fetch(since: str, offset: int) -> Any:
        page = ctx.kiotviet.products_page(offset, since=since, by_modified=True, removed=not removed)
        removed.extend(page.removed_ids or (0,))  # asked once a pull (0: asked, none removed)
        return page

    for items, position in keyset(ctx, fetch, lambda p: (p.modified_date, p.id), checkpoint):
        changes = [_kiotviet_change(ctx, "product.update", f"product:{p.id}", p, p.modified_date) for p in items]
        gone = [i for i in removed if i]
        removed[:] = [0]
        yield changes + _removed(ctx, "product.delete", tuple(gone)), position


def read_stock(ctx: ShopContext, checkpoint: dict[str, Any]) -> Iterator[tuple[list[Change], dict[str, Any]]]:
    """Stock rows changed since the watermark whose value differs from what Abaha was given."""
    shop, branch = ctx.connection.shop_id, ctx.connection.branch_id

    def fetch(since: str, offset: int) -> Any:
        return ctx.kiotviet.stock_page(branch, offset, since=since)

    for rows, position in keyset(ctx, fetch, lambda r: (r.modified_date, r.product_id), checkpoint):
        read_ms = int(clock.now().timestamp() * 1000)
        known = ctx.catalog.stock_values(shop, [r.product_id for r in rows])
        waiting = ctx.pending.which_pending(shop, [f"stock:{r.product_id}" for r in rows])
        values = {r.product_id: sellable(i.on_hand, i.reserved) for r in rows if (i := r.at(branch)) is not None}
        # what differs from what Abaha was given, or waits as an older read: this read is newer
        yield [stock_read(shop, branch, pid, value, read_ms) for pid, value in values.items()
               if known.get(pid) != value or f"stock:{pid}" in waiting], position  # fmt: skip


def read_categories(ctx: ShopContext, checkpoint: dict[str, Any]) -> Iterator[tuple[list[Change], dict[str, Any]]]:
    removed: list[int] = []

    def fetch(since: str, offset: int) -> Any:
        page = ctx.kiotviet.categories_page(offset, since=since, by_modified=True, removed=not removed)
        removed.extend(page.removed_ids or (0,))
        return page

    for items, position in keyset(ctx, fetch, lambda c: (c.modified_date, c.id), checkpoint):
        changes = [_kiotviet_change(ctx, "category.update", f"category:{c.id}", c, c.modified_date) for c in items]
        gone = [i for i in removed if i]
        removed[:] = [0]
        yield changes + _removed(ctx, "category.delete", tuple(gone)), position


def read_customers(ctx: ShopContext, checkpoint: dict[str, Any]) -> Iterator[tuple[list[Change], dict[str, Any]]]:
    def fetch(since: str, offset: int) -> Any:
        return ctx.kiotviet.customers_page(offset, since=since, by_modified=True)

    for items, position in keyset(ctx, fetch, lambda c: (c.modified_date, c.id), checkpoint):
        yield (
            [_kiotviet_change(ctx, "customer.update", f"kv_customer:{c.id}", c, c.modified_date) for c in items],
            position,
        )


def read_kiotviet_orders(ctx: ShopContext, checkpoint: dict[str, Any]) -> Iterator[tuple[list[Change], dict[str, Any]]]:
    def fetch(since: str, offset: int) -> Any:
        return ctx.kiotviet.orders_page(ctx.connection.branch_id, offset, since=since)

    for items, position in keyset(ctx, fetch, lambda o: (o.modified_date, o.id), checkpoint):
        yield [_kiotviet_change(ctx, "order.update", f"kv_order:{o.id}", o, o.modified_date) for o in items], position


def _abaha_changes(ctx: ShopContext, kind: str, items: list[Any]) -> list[Change]:
    shop, received = ctx.connection.shop_id, iso_utc(clock.now())
    events = [Event(id=event_id("reconcile", shop, kind, i.id, i.updated_at), source="abaha", type=kind, shop_id=shop,
                    entity_id=str(i.id), version=i.updated_at or received, received_at=received,
                    data=plain_json(asdict(i))) for i in items]  # fmt: skip
    return [c for c in (change_of(e) for e in events) if c is not None]


def read_abaha_orders(ctx: ShopContext, checkpoint: dict[str, Any]) -> Iterator[tuple[list[Change], dict[str, Any]]]:
    """Orders Abaha never posted (or we never stored) become `order.updated`: made if missing."""

    def fetch(since: str, offset: int) -> Any:
        return _AbahaPage(ctx.abaha.orders_page(since, offset + 1))

    for items, position in keyset(ctx, fetch, lambda o: (o.updated_at, o.id), checkpoint):
        yield _abaha_changes(ctx, "order.updated", items), position


def read_abaha_customers(ctx: ShopContext, checkpoint: dict[str, Any]) -> Iterator[tuple[list[Change], dict[str, Any]]]:
    def fetch(since: str, offset: int) -> Any:
        return _AbahaPage(ctx.abaha.customers_page(since, offset + 1))

    for items, position in keyset(ctx, fetch, lambda c: (c.updated_at, c.id), checkpoint):
        yield _abaha_changes(ctx, "customer.updated", items), position


class _AbahaPage:
    """Abaha's numbered pages in the shape `keyset` pages by (an "offset" is a page number - 1)."""

    def __init__(self, page: Any) -> None:
        self.items = page.items
        self.problems = page.problems
        self._next = page.next_page

    def next_offset(self, offset: int) -> int | None:
        return self._next - 1 if self._next else None


PRICE_PULL_EVERY = timedelta(hours=1)  # KiotViet lists no price change by time: a whole pass, hourly


def read_prices(ctx: ShopContext, checkpoint: dict[str, Any]) -> Iterator[tuple[list[Change], dict[str, Any]]]:
    """Price books and all their prices, at most once an hour (the budget): a book or a price
    that differs from what was applied is made pending as read, one gone is checked like a
    webhook's delete. KiotViet says nothing of price changes by time, so this is a whole pass."""
    book_index = checkpoint.get("book")
    last = parse_kiotviet_datetime(checkpoint["since"])
    if book_index is None and clock.now() - last < PRICE_PULL_EVERY:
        return
    books = ctx.kiotviet.price_books()
    if book_index is None:
        yield price_book_changes(ctx, books), {"book": 0, "offset": 0, "seen": []}
        book_index = 0
    for index in range(int(book_index), len(books)):
        book, offset = books[index].id, int(checkpoint.get("offset") or 0) if index == book_index else 0
        seen: list[int] = list(checkpoint.get("seen") or []) if index == book_index else []
        following: int | None = offset
        while following is not None:
            read_ms = int(clock.now().timestamp() * 1000)
            page = ctx.kiotviet.prices_page(book, following)
            seen += [p.product_id for p in page.items]
            following = page.next_offset(following)
            changes = price_changes(ctx, book, page.items, read_ms)
            if following is None:
                changes += removed_prices(ctx, book, set(seen))
            yield changes, {"book": index if following is not None else index + 1, "offset": following or 0,
                            "seen": seen if following is not None else []}  # fmt: skip


def price_book_changes(ctx: ShopContext, books: list[Any]) -> list[Change]:
    """Books whose name or flag differ from what was applied, and books KiotViet has no more."""
    shop = ctx.connection.shop_id
    changes = [_kiotviet_change(ctx, "pricebook.update", f"pricebook:{b.id}", b, b.modified_date) for b in books]
    known = ctx.pending.applied_ids(shop, "pricebook")
    listed = {str(b.id) for b in books}
    return changes + _removed(ctx, "pricebook.delete", tuple(int(i) for i in known - listed))


def price_changes(ctx: ShopContext, book: int, prices: Any, read_ms: int) -> list[Change]:
    """Prices that differ from what was applied, or that wait as an older read: this one is newer."""
    shop = ctx.connection.shop_id
    ids = [f"{book}:{p.product_id}" for p in prices]
    applied = ctx.pending.applied(shop, "price", ids)
    waiting = ctx.pending.which_pending(shop, [f"price:{i}" for i in ids])
    fresh = [p for p in prices if (a := applied[f"{book}:{p.product_id}"]) is None or a.fingerprint != str(p.price)
             or f"price:{book}:{p.product_id}" in waiting]  # fmt: skip
    events = [Event(id=event_id("reconcile", shop, "price", book, p.product_id, p.price, read_ms), source="kiotviet",
                    type="pricebookdetail.update", shop_id=shop, entity_id=f"{book}:{p.product_id}",
                    version=iso_from_ms(read_ms), received_at=iso_from_ms(read_ms), data=plain_json(asdict(p)))
              for p in fresh]  # fmt: skip
    return [read_change(e, "price", read_ms * 1000) for e in events]


def removed_prices(ctx: ShopContext, book: int, seen: set[int]) -> list[Change]:
    """Prices applied to this book that KiotViet's book no longer has: checked, like a delete."""
    shop, received = ctx.connection.shop_id, iso_utc(clock.now())
    known = ctx.pending.applied_ids(shop, "price", prefix=f"{book}:")
    waiting = {e.split(":", 1)[1] for e in ctx.pending.pending_ids(shop, prefix=f"price:{book}:")}
    gone = [i for i in known | waiting if int(i.split(":")[1]) not in seen]
    applied = ctx.pending.applied(shop, "price", gone)
    events = [Event(id=event_id("reconcile", shop, "price-gone", i, received), source="kiotviet",
                    type="pricebookdetail.delete", shop_id=shop, entity_id=i, version=received, received_at=received,
                    data={"price_book_id": book, "product_id": int(i.split(":")[1])})
              for i in gone if i in waiting or ((a := applied[i]) is not None and a.fingerprint != "-1")]  # fmt: skip
    return [c for c in (change_of(e) for e in events) if c is not None]


def refresh_webhooks(services: Services, ctx: ShopContext) -> list[str]:
    """Re-read the shop's settings and webhooks: register ours again where the type is free and
    ours is gone or inactive, and keep the connection's warnings current."""
    base = services.settings.public_base_url
    connection = ctx.connection
    stored = services.connections.readable_secrets(connection.shop_id)
    if not base or stored is None or not connection.webhooks:
        return []  # saved without registering webhooks: nothing of ours to look after
    url = f"{base}/webhooks/kiotviet/{connection.shop_id}"
    found = hooks.survey(ctx.kiotviet, url)
    lost = [kind for kind in found.free() if not any(h.is_active for h in found.ours.get(kind, []))]
    if lost:
        for kind in lost:
            for hook in found.ours.get(kind, []):
                ctx.kiotviet.delete_webhook(hook.id)
        hooks.register(ctx.kiotviet, services.connections, connection, stored, lost, url)
        ctx.state.report(connection.shop_id, f"webhooks {', '.join(lost)} were missing or inactive in KiotViet; "
                                             "registered again")  # fmt: skip
    warnings = hooks.current_warnings(ctx.kiotviet.settings(), found)
    services.connections.save_warnings(connection.shop_id, warnings)
    return warnings


PULLS: dict[str, Reader] = {
    "kiotviet:categories": read_categories,
    "kiotviet:products": read_products,
    "kiotviet:stock": read_stock,
    "kiotviet:customers": read_customers,
    "kiotviet:orders": read_kiotviet_orders,
    "kiotviet:prices": read_prices,
    "abaha:orders": read_abaha_orders,
    "abaha:customers": read_abaha_customers,
}
