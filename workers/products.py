"""Products, KiotViet → Abaha, a batch at a time: one `PUT /products:batch` per 100 products.

A product is written with its variant group (`master_kv_id`) and, for another unit of a base row
(a case of 24 cans), `unit_of` with the base row's images and stock derived from the base row's.
A product KiotViet no longer has is hidden, never deleted. Stock itself is `workers/stock.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import structlog

from adapters.catalog import RowRecord
from adapters.errors import AbahaRejected, Busy, PermanentError, TransientError
from adapters.kiotviet import BudgetExhausted
from adapters.pending import Action, Applied, Pending, Release
from schemas.changes import Change, Mode, fingerprint, micros_of
from schemas.events import Event, Outcome, event_id, iso_from_ms, plain_json
from schemas.kiotviet import KvProduct
from workers.apply import Postponed, Result, Work, failure, read_at_of

log = structlog.get_logger(__name__)
STOCK_LEASE_MS = 30_000  # a product write holds its stock entity this long at most (a dead worker's lapses)
# A product KiotViet has deleted stays hidden: KiotViet never gives its id to another product.
GONE_ORDER = 2**52
GONE = "gone"


@dataclass(frozen=True)
class Links:
    """A row's place among its siblings."""

    master_id: int | None
    base_id: int | None
    conversion: float | None


@dataclass(frozen=True)
class Write:
    entry: Pending
    product: KvProduct
    state: Applied
    was_read: bool


def apply_products(entries: Sequence[Pending], work: Work) -> dict[str, Result]:
    """Write each product's newest content; read KiotViet where the change says to."""
    ctx = work.ctx
    applied = ctx.pending.applied(work.shop, "product", [e.entity_id for e in entries])
    records = ctx.catalog.records(work.shop, [int(e.entity_id) for e in entries])
    results: dict[str, Result] = {}
    writes: list[Write] = []
    hides: list[tuple[Pending, int]] = []
    for entry in entries:
        if work.out_of_time():  # reads of KiotViet took the batch's time: the rest in the next batch
            results[entry.entity] = Result(Outcome.RETRYING, error=Postponed("the batch ran out of time"))
            continue
        current = applied[entry.entity_id]
        try:
            product, read_now = current_content(entry, current, records.get(int(entry.entity_id)), work)
        except BudgetExhausted:
            raise
        except (TransientError, PermanentError) as exc:
            results[entry.entity] = failure(exc)
            continue
        read_at = read_at_of(entry, read_now, current, work)
        was_read = read_now or entry.meta.mode is Mode.READ
        if product is None:
            if current is not None and current.order == GONE_ORDER:
                results[entry.entity] = Result(Outcome.UNCHANGED, replace(current, read_at=read_at))
            else:
                hides.append((entry, read_at))
            continue
        state = Applied(micros_of(product.modified_date, work.read_order), content_fingerprint(product), read_at)
        if current is not None and not current.is_older_than(state.order, state.fingerprint, repair=work.repair):
            outcome = Outcome.UNCHANGED if was_read else Outcome.STALE
            results[entry.entity] = Result(outcome, replace(current, read_at=max(current.read_at, read_at)))
            continue
        writes.append(Write(entry, product, state, was_read))
    results.update(put_products(writes, work, records))
    results.update(hide_products(hides, work))
    return results


def current_content(
    entry: Pending, current: Applied | None, record: RowRecord | None, work: Work
) -> tuple[KvProduct | None, bool]:
    """The content to write and whether it was read now: the change's own, unless the change
    says "read it" (a delete, a tie) or its body lacks what the write needs."""
    product = None if entry.meta.order is None else KvProduct.from_json(entry.event.data)
    if product is not None and not entry.needs_read(current) and not needs_completion(product, record):
        return product, False
    log.info("product.read_from_kiotviet", product_id=entry.entity_id)
    return work.ctx.kiotviet.product(int(entry.entity_id)), True


def needs_completion(product: KvProduct, record: RowRecord | None) -> bool:
    """A thin body: a field the write needs is missing, or the row looks like a variant or a
    unit row but does not say whose (a row never seen, so nothing is known of its links)."""
    if any(value is None for value in (product.code, product.name, product.base_price, product.allows_sale)):
        return True
    if product.links_given or record is not None:
        return False
    return bool(product.attributes) or product.conversion_value not in (None, 1, 1.0)


def content_fingerprint(product: KvProduct) -> str:
    return fingerprint(plain_json(asdict(product)))


def links_of(product: KvProduct, record: RowRecord | None) -> Links:
    """The body's links when it gives them, else what was known of the row."""
    if product.links_given or record is None:
        return Links(product.master_id, product.base_id, product.conversion_value if product.base_id else None)
    return Links(record.master_id, record.base_id, record.conversion)


def put_products(writes: Sequence[Write], work: Work, records: dict[int, RowRecord]) -> dict[str, Result]:
    """Write the products whose stock no other batch is writing now (a product's body carries
    its stock: written beside a stock batch, it could put back the value that batch replaces);
    the others are retried alone a moment later."""
    if not writes:
        return {}
    links = {w.product.id: links_of(w.product, records.get(w.product.id)) for w in writes}
    stock_of = {w.product.id: f"stock:{links[w.product.id].base_id or w.product.id}" for w in writes}
    wanted = sorted(set(stock_of.values()) - work.holds)
    lease_id, _, leased = work.ctx.pending.lease(work.shop, wanted, STOCK_LEASE_MS) if wanted else ("", 0, set())
    busy = {pid for pid, entity in stock_of.items() if entity not in work.holds and entity not in leased}
    busy_error = Busy("its stock is being written by another batch")  # alone, a moment later
    results = {w.entry.entity: Result(Outcome.RETRYING, error=busy_error) for w in writes if w.product.id in busy}
    try:
        return {**results, **write_products([w for w in writes if w.product.id not in busy], links, work, records)}
    finally:
        if leased:
            work.ctx.pending.finish(work.shop, lease_id, [Release(entity, Action.DONE) for entity in sorted(leased)])


def write_products(writes: Sequence[Write], links: dict[int, Links], work: Work,
                   records: dict[int, RowRecord]) -> dict[str, Result]:  # fmt: skip
    """One batch call per 100 products; what Abaha refuses fails that product alone."""
    if not writes:
        return {}
    ctx, shop = work.ctx, work.shop
    bases = {link.base_id for link in links.values() if link.base_id}
    base_records = ctx.catalog.records(shop, bases)
    stock = ctx.catalog.stock_values(shop, [w.product.id for w in writes] + list(bases))
    to_confirm: list[int] = []  # stock taken from the body, to be read once the product is written
    weak_stock = {w.product.id: base_stock(w, work, to_confirm) for w in writes
                  if links[w.product.id].base_id is None and w.product.id not in stock}  # fmt: skip
    stock.update(weak_stock)  # a unit row written with its base row takes the base's new stock
    bodies, unit_stock = [], {}
    for write in writes:
        link = links[write.product.id]
        if link.base_id is None:
            value = stock[write.product.id]
        else:
            value = unit_stock[write.product.id] = unit_stock_of(link, stock, work)
        images = base_records[link.base_id].images if link.base_id and link.base_id in base_records else ()
        bodies.append({**product_body(write.product, link, value, images), "kv_id": write.product.id})
    answers = ctx.abaha.put_products(bodies)
    results: dict[str, Result] = {}
    saved: dict[int, RowRecord] = {}
    for write, body, answer in zip(writes, bodies, answers, strict=True):
        if answer.status == "ok":
            results[write.entry.entity] = Result(Outcome.APPLIED, write.state)
            link = links[write.product.id]
            saved[write.product.id] = RowRecord(link.master_id, link.base_id, link.conversion,
                                                tuple(body["images"]), write.product.code)  # fmt: skip
        else:
            message = f"Abaha refused product {write.product.code} ({write.product.id}): {answer.error}"
            results[write.entry.entity] = Result(Outcome.FAILED, error=AbahaRejected(message, 422, "refused"))
    # a refused product's stock is not read: Abaha has no such product, and the read's write would
    # only ask for the product again (a second failure of the same refusal for the operator)
    work.follow_ups += [stock_signal(work, pid) for pid in to_confirm if pid in saved]
    ctx.catalog.save_stock_values(shop, {k: v for k, v in weak_stock.items() if k in saved}, only_new=True)
    ctx.catalog.save_stock_values(shop, {k: v for k, v in unit_stock.items() if k in saved})
    ctx.catalog.save_records(shop, saved, records)
    refresh_unit_images(saved, records, work)
    return results


def base_stock(write: Write, work: Work, to_confirm: list[int]) -> int:
    """A base row's stock when none was written yet: the body's own for the branch, until a read
    of the stock itself confirms it (a body read just now is such a read)."""
    inventory = write.product.inventory_at(work.branch)
    if not write.was_read or inventory is None:
        to_confirm.append(write.product.id)
    return sellable(inventory.on_hand, inventory.reserved) if inventory else 0


def unit_stock_of(link: Links, stock: dict[int, int], work: Work) -> int:
    """How many whole units of a unit row its base row's stock makes (0 until that is known)."""
    assert link.base_id is not None
    if link.base_id not in stock:
        work.follow_ups.append(stock_signal(work, link.base_id))
    return whole_units(stock.get(link.base_id, 0), link.conversion)


def refresh_unit_images(saved: dict[int, RowRecord], before: dict[int, RowRecord], work: Work) -> None:
    """A base row's new images go to its unit rows, which have none of their own."""
    changed = [
        pid for pid, r in saved.items() if r.base_id is None and (before.get(pid) or RowRecord()).images != r.images
    ]
    if not changed:
        return
    units = work.ctx.catalog.units_of(work.shop, changed)
    items = [{"kv_id": unit, "images": list(saved[base].images)} for base in changed for unit in units.get(base, {})]
    if items:
        for answer in work.ctx.abaha.patch_products(items):
            if answer.status == "error":
                work.ctx.state.report(work.shop, f"Abaha refused the images of unit row {answer.kv_id}: {answer.error}")


def hide_products(hides: Sequence[tuple[Pending, int]], work: Work) -> dict[str, Result]:
    """KiotViet no longer has them: hidden on Abaha, never deleted (order history keeps them)."""
    if not hides:
        return {}
    answers = work.ctx.abaha.patch_products([{"kv_id": int(e.entity_id), "active": False} for e, _ in hides])
    results: dict[str, Result] = {}
    for (entry, read_at), answer in zip(hides, answers, strict=True):
        if answer.status == "error":
            message = f"Abaha refused to hide product {entry.entity_id}: {answer.error}"
            results[entry.entity] = Result(Outcome.FAILED, error=AbahaRejected(message, 422, "refused"))
        else:  # "not_found": Abaha never had it, which is as hidden as it gets
            results[entry.entity] = Result(Outcome.APPLIED, Applied(GONE_ORDER, GONE, read_at))
    return results


def product_body(product: KvProduct, link: Links, stock: int, base_images: Sequence[str]) -> dict[str, Any]:
    """Abaha's product body (`abaha-api.md` §1)."""
    unit_of = {"kv_id": link.base_id, "conversion": link.conversion or 1} if link.base_id else None
    images = list(base_images) if link.base_id else list(product.images or ())
    return {
        "sku": product.code,
        "barcode": product.barcode,
        "name": product.name,
        "full_name": product.full_name or product.name,
        "category_kv_id": product.category_id,
        "description": product.description or "",
        "unit": product.unit,
        "price": product.base_price,
        "weight_grams": round(product.weight) if product.weight is not None else None,
        "images": images,
        "attributes": [{"name": a.name, "value": a.value} for a in product.attributes or ()],
        "active": product.is_active is not False and product.allows_sale is not False,
        "stock": stock,
        "source_modified_at": product.modified_date,
        "master_kv_id": link.master_id,
        "unit_of": unit_of,
    }


def sellable(on_hand: float, reserved: float) -> int:
    """What a customer can still buy at the branch; never below zero on the website."""
    return max(0, int(on_hand - reserved))


def whole_units(base_sellable: int, conversion: float | None) -> int:
    """How many of a unit row's units the base row's stock makes (a case needs 24 cans)."""
    return int(base_sellable // conversion) if conversion and conversion > 0 else base_sellable


def stock_signal(work: Work, product_id: int) -> Change:
    """ "Read this product's stock": a change the batch makes for itself."""
    event = Event(
        id=event_id("stock-check", work.shop, product_id, work.taken_at),
        source="kiotviet",
        type="stock.update",
        shop_id=work.shop,
        entity_id=str(product_id),
        version=iso_from_ms(work.taken_at),
        received_at=iso_from_ms(work.taken_at),
        data={"product_id": product_id, "branch_id": work.branch},
    )
    return Change(event, f"stock:{product_id}", Mode.SIGNAL)
