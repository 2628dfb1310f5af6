"""Full sync ("Đồng bộ"): KiotViet → Abaha, one page per job, through the same appliers.

Each job reads one KiotViet page (at most 100 items), applies it as one batch (products with
Abaha's batch call, their stock as read with them), records progress, and enqueues the next page
at the back of the `sync` queue. So memory stays flat however large the catalogue, and other
shops' changes and syncs take turns with it. A page's items are content just read from KiotViet:
they replace what is older and rewrite what is as new (a full sync is how Abaha is repaired);
an item another batch is applying right now is made pending instead, never lost.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

import structlog
from rq import get_current_job

from adapters.budget import BACKGROUND
from adapters.errors import PermanentError
from adapters.inbox import JOB_SECONDS, SYNC_QUEUE, event_queue, job_retry
from adapters.kiotviet import BudgetExhausted
from adapters.syncruns import ENTITIES, SyncRuns
from schemas.changes import Change, Mode, micros_of, read_change
from schemas.events import Event, Outcome, event_id, iso_from_ms, plain_json
from wiring import Services
from workers.context import ShopContext, process_services, shop_context
from workers.drain import apply_now
from workers.products import sellable
from workers.stock import stock_read

log = structlog.get_logger(__name__)
SYNC_STEP = "workers.sync.sync_step"


@dataclass(frozen=True)
class Page:
    """What one step read: the changes to apply, the entity's total, where the next page starts."""

    changes: list[Change]
    count: int
    total: int | None
    next_offset: int | None
    problems: tuple[str, ...] = ()


def start_full_sync(services: Services, shop_id: str, entities: list[str]) -> str:
    """Record a new run and enqueue its first step; the run supersedes any earlier one."""
    runs = SyncRuns(services.redis)
    run_id = runs.start(shop_id, entities)
    enqueue_step(services, shop_id, run_id, entities[0], 0)
    log.info("sync.started", shop_id=shop_id, run_id=run_id, entities=entities)
    return run_id


def enqueue_step(services: Services, shop_id: str, run_id: str, entity: str, offset: int, delay: float = 0) -> None:
    queue = event_queue(services.redis, SYNC_QUEUE)
    args = (shop_id, run_id, entity, offset)
    options = {"retry": job_retry(), "description": f"sync {entity} from {offset} shop={shop_id}",
               "job_timeout": JOB_SECONDS, "result_ttl": 3600, "failure_ttl": 30 * 24 * 3600}  # fmt: skip
    if delay:
        queue.enqueue_in(timedelta(seconds=delay), SYNC_STEP, *args, **options)
    else:
        queue.enqueue(SYNC_STEP, *args, **options)


def sync_step(shop_id: str, run_id: str, entity: str, offset: int) -> dict[str, Any]:
    """RQ entry: one page of one entity of a full sync."""
    services = process_services()
    runs = SyncRuns(services.redis)
    if not runs.is_current(shop_id, run_id):
        return {"outcome": "superseded"}
    bound = structlog.contextvars.bind_contextvars(shop_id=shop_id, run_id=run_id, entity=entity)
    try:
        ctx = shop_context(services, shop_id, priority=BACKGROUND)
        if ctx is None:
            raise PermanentError(f"shop {shop_id} has no connection any more")
        runs.set_state(shop_id, run_id, "running")
        page = READERS[entity.split(":")[0]](ctx, services, run_id, entity, offset)
        applied = apply_page(services, shop_id, runs, run_id, entity, offset, page)
    except BudgetExhausted as exc:
        # not a failure: this shop's budget refills; other shops' steps run meanwhile
        enqueue_step(services, shop_id, run_id, entity, offset, delay=exc.retry_after or 10)
        return {"outcome": "waiting", "seconds": exc.retry_after}
    except Exception as exc:
        job = get_current_job()
        if isinstance(exc, PermanentError) or job is None or not job.retries_left:
            runs.error(shop_id, run_id, f"{entity} from item {offset}: {exc}")
            runs.set_state(shop_id, run_id, "failed")
        log.warning("sync.step_failed", error=str(exc), offset=offset)
        raise
    finally:
        structlog.contextvars.reset_contextvars(**bound)
    advance(services, runs, shop_id, run_id, entity, page)
    return {"outcome": "done", "items": page.count, **applied}


def apply_page(services: Services, shop_id: str, runs: SyncRuns, run_id: str, entity: str, offset: int,
               page: Page) -> dict[str, int]:  # fmt: skip
    """Apply the page as one batch; report what failed (each failure is a job of its own)."""
    done = apply_now(services, shop_id, page.changes, repair=True, priority=BACKGROUND)
    for entity_key, result in done.results.items():
        if result.outcome is Outcome.FAILED:
            runs.error(shop_id, run_id, f"{entity_key}: {result.error}")
    for problem in page.problems:
        runs.error(shop_id, run_id, f"{entity} from item {offset}: KiotViet sent an item that does not read: {problem}")
    name = "prices" if entity.startswith("prices:") else entity
    if offset == 0 and name == "prices":
        runs.add_total(shop_id, run_id, "prices", page.total or 0)
    runs.progress(shop_id, run_id, name, page.count, None if name == "prices" else page.total)
    counted: dict[str, int] = {}
    for result in done.results.values():
        counted[str(result.outcome)] = counted.get(str(result.outcome), 0) + 1
    return counted


def advance(services: Services, runs: SyncRuns, shop_id: str, run_id: str, entity: str, page: Page) -> None:
    """Enqueue the next page, or the next entity, or mark the run done."""
    if page.next_offset is not None:
        enqueue_step(services, shop_id, run_id, entity, page.next_offset)
        return
    following = next_entity(runs, shop_id, run_id, entity)
    if following is None:
        runs.set_state(shop_id, run_id, "done")
        log.info("sync.done", shop_id=shop_id, run_id=run_id)
    else:
        enqueue_step(services, shop_id, run_id, following, 0)


def next_entity(runs: SyncRuns, shop_id: str, run_id: str, entity: str) -> str | None:
    """The step after `entity`: each price book's prices follow the price books."""
    description = runs.describe(shop_id, run_id) or {}
    wanted = [e for e in ENTITIES if e in description.get("entities", {})]
    # each book once, however often a page was read again (a retried or repeated step)
    books: list[int] = list(dict.fromkeys(runs.recall(shop_id, run_id, "pricebooks") or []))
    order = []
    for name in wanted:
        order.append(name)
        if name == "pricebooks":
            order += [f"prices:{book}" for book in books]
    position = order.index(entity) if entity in order else len(order)
    return order[position + 1] if position + 1 < len(order) else None


def _event(shop_id: str, kind: str, entity_id: object, data: Any, read_ms: int, version: str | None = None) -> Event:
    return Event(id=event_id("sync", shop_id, kind, entity_id, read_ms), source="kiotviet", type=kind, shop_id=shop_id,
                 entity_id=str(entity_id), version=version or iso_from_ms(read_ms), received_at=iso_from_ms(read_ms),
                 data=plain_json(asdict(data) if not isinstance(data, dict) else data))  # fmt: skip


def _removed(shop_id: str, kind: str, ids: tuple[int, ...], read_ms: int) -> list[Change]:
    """What KiotViet reports removed: checked against KiotViet when applied, like a webhook's."""
    return [Change(_event(shop_id, kind, i, {"id": i}, read_ms), f"{kind.split('.')[0]}:{i}", Mode.SIGNAL) for i in ids]


def read_categories(ctx: ShopContext, services: Services, run_id: str, entity: str, offset: int) -> Page:
    shop_id, read_ms = ctx.connection.shop_id, _redis_ms(services)
    page = ctx.kiotviet.categories_page(offset, removed=offset == 0)
    changes = [read_change(_event(shop_id, "category.update", c.id, c, read_ms, c.modified_date), "category",
                           micros_of(c.modified_date, read_ms * 1000)) for c in page.items]  # fmt: skip
    changes += _removed(shop_id, "category.delete", page.removed_ids, read_ms)
    return Page(changes, page.count, page.total, page.next_offset(offset), page.problems)


def read_products(ctx: ShopContext, services: Services, run_id: str, entity: str, offset: int) -> Page:
    """A page of products, each with its stock at the branch as read with it."""
    shop_id, read_ms = ctx.connection.shop_id, _redis_ms(services)
    page = ctx.kiotviet.products_page(offset, removed=offset == 0)
    changes = [read_change(_event(shop_id, "product.update", p.id, p, read_ms, p.modified_date), "product",
                           micros_of(p.modified_date, read_ms * 1000)) for p in page.items]  # fmt: skip
    for product in page.items:
        inventory = product.inventory_at(ctx.connection.branch_id)
        if inventory is not None and product.base_id is None:
            value = sellable(inventory.on_hand, inventory.reserved)
            changes.append(stock_read(shop_id, ctx.connection.branch_id, product.id, value, read_ms))
    changes += _removed(shop_id, "product.delete", page.removed_ids, read_ms)
    return Page(changes, page.count, page.total, page.next_offset(offset), page.problems)


def read_price_books(ctx: ShopContext, services: Services, run_id: str, entity: str, offset: int) -> Page:
    shop_id, read_ms = ctx.connection.shop_id, _redis_ms(services)
    page = ctx.kiotviet.price_books_page(offset)
    runs = SyncRuns(services.redis)
    books = runs.recall(shop_id, run_id, "pricebooks") or []
    runs.remember(shop_id, run_id, "pricebooks", list(dict.fromkeys(books + [b.id for b in page.items])))
    changes = [read_change(_event(shop_id, "pricebook.update", b.id, b, read_ms, b.modified_date), "pricebook",
                           micros_of(b.modified_date, read_ms * 1000)) for b in page.items]  # fmt: skip
    return Page(changes, page.count, page.total, page.next_offset(offset), page.problems)


def read_prices(ctx: ShopContext, services: Services, run_id: str, entity: str, offset: int) -> Page:
    shop_id, read_ms = ctx.connection.shop_id, _redis_ms(services)
    book = int(entity.split(":")[1])
    page = ctx.kiotviet.prices_page(book, offset)
    changes = [read_change(_event(shop_id, "pricebookdetail.update", f"{book}:{p.product_id}", p, read_ms), "price",
                           read_ms * 1000) for p in page.items]  # fmt: skip
    return Page(changes, page.count, page.total, page.next_offset(offset), page.problems)


def read_customer_groups(ctx: ShopContext, services: Services, run_id: str, entity: str, offset: int) -> Page:
    """Groups have no webhook and no version: written as they are, before the customers."""
    page = ctx.kiotviet.customer_groups_page(offset)
    for group in page.items:
        ctx.abaha.put_customer_group(group.id, {"name": group.name, "discount": group.discount})
    return Page([], page.count, page.total, page.next_offset(offset), page.problems)


def read_customers(ctx: ShopContext, services: Services, run_id: str, entity: str, offset: int) -> Page:
    shop_id, read_ms = ctx.connection.shop_id, _redis_ms(services)
    page = ctx.kiotviet.customers_page(offset, with_groups=True)
    changes = [read_change(_event(shop_id, "customer.update", c.id, c, read_ms, c.modified_date), "kv_customer",
                           micros_of(c.modified_date, read_ms * 1000)) for c in page.items]  # fmt: skip
    return Page(changes, page.count, page.total, page.next_offset(offset), page.problems)


READERS: dict[str, Callable[..., Page]] = {
    "categories": read_categories,
    "products": read_products,
    "pricebooks": read_price_books,
    "prices": read_prices,
    "customer_groups": read_customer_groups,
    "customers": read_customers,
}


def _redis_ms(services: Services) -> int:
    """Redis's clock, before the read: what the page shows is at least this new."""
    seconds, micros = services.redis.time()  # type: ignore[misc]
    return int(seconds) * 1000 + int(micros) // 1000
