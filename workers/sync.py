"""Full sync ("Đồng bộ"): KiotViet → Abaha, one page per job, through the same apply rules.

Each job reads one KiotViet page (at most 100 items), writes it (Abaha's batch call where there
is one), records progress, and enqueues the next page at the back of the `sync` queue. So memory
stays flat however large the catalogue, the `events` queue (listened to first) is never stuck
behind a long sync, and two shops' syncs take turns. Every item goes through the version guard:
a webhook applied after the page was read is newer and is not overwritten.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import structlog
from rq import get_current_job

from adapters.budget import BACKGROUND
from adapters.errors import PermanentError
from adapters.inbox import EVENT_JOB_SECONDS, SYNC_QUEUE, event_queue, job_retry
from adapters.kiotviet import PAGE_SIZE, BudgetExhausted
from adapters.syncruns import ENTITIES, SyncRuns
from schemas.events import iso_utc, to_micros
from schemas.kiotviet import CategorySchema, CustomerSchema, KvProduct, PriceBookSchema, ProductSchema, read_removed_ids
from workers.catalog import hide_product, product_body, sellable, write_if_newer
from workers.context import ShopContext, process_services, shop_context
from workers.customers import write_customer_to_abaha

log = structlog.get_logger(__name__)
SYNC_STEP = "workers.sync.sync_step"
# built once: a marshmallow schema is costly to make, cheap to reuse
PRODUCTS, CATEGORY, PRICE_BOOK, CUSTOMER = (
    ProductSchema(many=True),
    CategorySchema(),
    PriceBookSchema(),
    CustomerSchema(),
)


@dataclass(frozen=True)
class Page:
    """What one step did: items written, the entity's total, where the next page starts."""

    count: int
    total: int | None
    next_offset: int | None


def start_full_sync(services: Any, shop_id: str, entities: list[str]) -> str:
    """Record a new run and enqueue its first step; the run supersedes any earlier one."""
    runs = SyncRuns(services.redis)
    run_id = runs.start(shop_id, entities)
    enqueue_step(services.redis, shop_id, run_id, entities[0], 0)
    log.info("sync.started", shop_id=shop_id, run_id=run_id, entities=entities)
    return run_id


def enqueue_step(redis_client: Any, shop_id: str, run_id: str, entity: str, offset: int, delay: float = 0) -> None:
    queue = event_queue(redis_client, SYNC_QUEUE)
    args = (shop_id, run_id, entity, offset)
    options = {"retry": job_retry(), "description": f"sync {entity} from {offset} shop={shop_id}",
               "job_timeout": EVENT_JOB_SECONDS, "result_ttl": 3600, "failure_ttl": 30 * 24 * 3600}  # fmt: skip
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
    structlog.contextvars.bind_contextvars(shop_id=shop_id, run_id=run_id, entity=entity)
    try:
        ctx = shop_context(services, shop_id, priority=BACKGROUND)
        if ctx is None:
            raise PermanentError(f"shop {shop_id} has no connection any more")
        runs.set_state(shop_id, run_id, "running")
        page = STEPS[entity.split(":")[0]](ctx, runs, run_id, entity, offset)
    except BudgetExhausted as exc:
        # not a failure: this shop's budget refills; other shops' steps run meanwhile
        enqueue_step(services.redis, shop_id, run_id, entity, offset, delay=exc.retry_after or 10)
        return {"outcome": "waiting", "seconds": exc.retry_after}
    except Exception as exc:
        job = get_current_job()
        if isinstance(exc, PermanentError) and job is not None:
            job.retries_left = 0  # retrying cannot help until someone changes something
        if isinstance(exc, PermanentError) or job is None or not job.retries_left:
            runs.error(shop_id, run_id, f"{entity} from item {offset}: {exc}")
            runs.set_state(shop_id, run_id, "failed")
        log.warning("sync.step_failed", error=str(exc), offset=offset)
        raise
    finally:
        structlog.contextvars.clear_contextvars()
    advance(services.redis, runs, shop_id, run_id, entity, page)
    return {"outcome": "done", "items": page.count}


def advance(redis_client: Any, runs: SyncRuns, shop_id: str, run_id: str, entity: str, page: Page) -> None:
    """Enqueue the next page, or the next entity, or mark the run done."""
    if page.next_offset is not None:
        enqueue_step(redis_client, shop_id, run_id, entity, page.next_offset)
        return
    following = next_entity(runs, shop_id, run_id, entity)
    if following is None:
        runs.set_state(shop_id, run_id, "done")
        log.info("sync.done", shop_id=shop_id, run_id=run_id)
    else:
        enqueue_step(redis_client, shop_id, run_id, following, 0)


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


def read_page(ctx: ShopContext, path: str, offset: int, **params: Any) -> tuple[dict[str, Any], int | None]:
    page: dict[str, Any] = ctx.kiotviet.request("GET", path, params={**params, "pageSize": PAGE_SIZE,
                                                                      "currentItem": offset})  # fmt: skip
    count = len(page.get("data") or [])
    total = int(page.get("total") or 0)
    return page, (offset + count if count and offset + count < total else None)


def sync_categories(ctx: ShopContext, runs: SyncRuns, run_id: str, entity: str, offset: int) -> Page:
    page, following = read_page(ctx, "/categories", offset, hierachicalData="false", includeRemoveIds="true")
    version = _now_micros()
    for item in page.get("data") or []:
        category = CATEGORY.load(item)
        body = {"name": category.name, "parent_kv_id": category.parent_id or None}
        write = partial(ctx.abaha.put_category, category.id, body)
        _guarded(ctx, "category", str(category.id), _micros(category.modified_date, version), write)
    if offset == 0:
        for removed in read_removed_ids(page):
            _guarded(ctx, "category", str(removed), version, partial(ctx.abaha.delete_category, removed))
    return _done(runs, ctx, run_id, "categories", page, following)


def sync_products(ctx: ShopContext, runs: SyncRuns, run_id: str, entity: str, offset: int) -> Page:
    page, following = read_page(ctx, "/products", offset, includeInventory="true", includeRemoveIds="true",
                                orderBy="id", orderDirection="Asc")  # fmt: skip
    read_at = _now_micros()
    products: list[KvProduct] = PRODUCTS.load(page.get("data") or [])
    write_products(ctx, products, read_at)
    if offset == 0:
        for removed in read_removed_ids(page):
            _guarded(ctx, "product", str(removed), read_at, partial(hide_product, removed, ctx))
    return _done(runs, ctx, run_id, "products", page, following)


def write_products(ctx: ShopContext, products: list[KvProduct], read_at: int) -> None:
    """One batch call for the page; items something newer was applied to are left out."""
    shop, branch = ctx.connection.shop_id, ctx.connection.branch_id
    ids = [str(p.id) for p in products]
    stock_ids = [f"{p.id}:{branch}" for p in products]
    with ExitStack() as held:
        for product_id in ids:
            held.enter_context(ctx.state.entity_lock(shop, "product", product_id))
        applied = ctx.state.applied_versions(shop, "product", ids)
        stock_applied = ctx.state.applied_versions(shop, "stock", stock_ids)
        fresh = [p for p in products if (applied[str(p.id)] or 0) <= _micros(p.modified_date, read_at)]
        items = []
        for product in fresh:
            newer_stock = (stock_applied[f"{product.id}:{branch}"] or 0) > read_at
            items.append({**product_body(product, _page_stock(ctx, product, newer_stock), iso_micros(read_at)),
                          "kv_id": product.id})  # fmt: skip
        results = ctx.abaha.put_products_batch(items) if items else []
        refused = {r["kv_id"]: r.get("error") for r in results if r.get("status") == "error"}
        for product in fresh:
            if product.id in refused:
                ctx.state.report(shop, f"Abaha refused product {product.code} ({product.id}): {refused[product.id]}")
        written = [(p, i) for p, i in zip(fresh, items, strict=True) if p.id not in refused]
        ctx.state.record_versions(shop, "product", {str(p.id): _micros(p.modified_date, read_at) for p, _ in written})
        with_stock = [(p, i["stock"]) for p, i in written if i["stock"] is not None]
        ctx.state.record_versions(shop, "stock", {f"{p.id}:{branch}": read_at for p, _ in with_stock})
        ctx.state.record_stock_values(shop, {p.id: stock for p, stock in with_stock})


def _page_stock(ctx: ShopContext, product: KvProduct, newer_applied: bool) -> int | None:
    """The branch's stock as the page read it, unless a newer stock change was applied since."""
    inventory = next((i for i in product.inventories or () if i.branch_id == ctx.connection.branch_id), None)
    if inventory is None or newer_applied:
        return ctx.state.stock_value(ctx.connection.shop_id, product.id)
    return sellable(inventory.on_hand, inventory.reserved)


def sync_pricebooks(ctx: ShopContext, runs: SyncRuns, run_id: str, entity: str, offset: int) -> Page:
    page, following = read_page(ctx, "/pricebooks", offset)
    version = _now_micros()
    books = runs.recall(ctx.connection.shop_id, run_id, "pricebooks") or []
    for item in page.get("data") or []:
        book = PRICE_BOOK.load(item)
        body = {"name": book.name, "active": book.is_active is not False}
        write = partial(ctx.abaha.put_price_list, book.id, body)
        _guarded(ctx, "pricebook", str(book.id), _micros(book.modified_date, version), write)
        books.append(book.id)
    runs.remember(ctx.connection.shop_id, run_id, "pricebooks", list(dict.fromkeys(books)))
    return _done(runs, ctx, run_id, "pricebooks", page, following)


def sync_prices(ctx: ShopContext, runs: SyncRuns, run_id: str, entity: str, offset: int) -> Page:
    book = int(entity.split(":")[1])
    page, following = read_page(ctx, f"/pricebooks/{book}", offset)
    read_at, shop = _now_micros(), ctx.connection.shop_id
    prices = []
    for item in page.get("data") or []:
        product = int(item.get("productId") or item.get("productid"))
        if not ctx.state.is_stale(shop, "price", f"{book}:{product}", read_at):
            prices.append({"product_kv_id": product, "price": round(float(item["price"]))})
    if prices:
        ctx.abaha.put_prices(book, prices)
        for row in prices:
            ctx.state.record_version(shop, "price", f"{book}:{row['product_kv_id']}", read_at)
    if offset == 0:
        runs.add_total(shop, run_id, "prices", int(page.get("total") or 0))
    runs.progress(shop, run_id, "prices", len(page.get("data") or []), None)
    return Page(len(page.get("data") or []), None, following)


def sync_customer_groups(ctx: ShopContext, runs: SyncRuns, run_id: str, entity: str, offset: int) -> Page:
    page, following = read_page(ctx, "/customers/group", offset)
    groups = runs.recall(ctx.connection.shop_id, run_id, "groups") or {}
    for item in page.get("data") or []:
        ctx.abaha.put_customer_group(int(item["id"]), {"name": item.get("name"), "discount": item.get("discount")})
        groups[item.get("name")] = int(item["id"])
    runs.remember(ctx.connection.shop_id, run_id, "groups", groups)
    return _done(runs, ctx, run_id, "customer_groups", page, following)


def sync_customers(ctx: ShopContext, runs: SyncRuns, run_id: str, entity: str, offset: int) -> Page:
    page, following = read_page(ctx, "/customers", offset, includeCustomerGroup="true", orderBy="id")
    read_at = _now_micros()
    groups = runs.recall(ctx.connection.shop_id, run_id, "groups") or {}
    for item in page.get("data") or []:
        customer = CUSTOMER.load(item)
        group_ids = item.get("groupIds") or [groups[n.strip()] for n in str(item.get("groups") or "").split("|")
                                             if n.strip() in groups]  # fmt: skip
        write = partial(write_customer_to_abaha, customer, group_ids, ctx, iso_micros(read_at))
        _guarded(ctx, "customer", str(customer.id), _micros(customer.modified_date, read_at), write)
    return _done(runs, ctx, run_id, "customers", page, following)


STEPS: dict[str, Callable[[ShopContext, SyncRuns, str, str, int], Page]] = {
    "categories": sync_categories,
    "products": sync_products,
    "pricebooks": sync_pricebooks,
    "prices": sync_prices,
    "customer_groups": sync_customer_groups,
    "customers": sync_customers,
}


def _done(runs: SyncRuns, ctx: ShopContext, run_id: str, entity: str, page: dict[str, Any],
          following: int | None) -> Page:  # fmt: skip
    count, total = len(page.get("data") or []), int(page.get("total") or 0)
    runs.progress(ctx.connection.shop_id, run_id, entity, count, total)
    return Page(count, total, following)


def _guarded(ctx: ShopContext, kind: str, entity_id: str, version: int, write: Callable[[], Any]) -> bool:
    # a full sync rewrites an entity at the version already applied: it is how Abaha is repaired
    return write_if_newer(ctx, kind, entity_id, version, write, same_is_stale=False)


def iso_micros(micros: int) -> str:
    return iso_utc(datetime.fromtimestamp(micros / 1_000_000, UTC))


def _now_micros() -> int:
    return to_micros(iso_utc(datetime.now(UTC)))


def _micros(modified: str | None, fallback: int) -> int:
    return to_micros(modified) if modified else fallback
