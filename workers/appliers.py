"""Which applier applies each kind of entity (`schemas.changes.KINDS`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, replace

from adapters.errors import PermanentError, TransientError
from adapters.kiotviet import BudgetExhausted
from adapters.pending import Applied, Pending
from schemas.events import Event, Outcome, plain_json
from workers import customers, orders
from workers.apply import Applier, Postponed, Result, Work, failure
from workers.categories import apply_categories, apply_price_books
from workers.context import ShopContext
from workers.prices import apply_prices
from workers.products import apply_products
from workers.stock import apply_stock

Handler = Callable[[Event, ShopContext], Outcome]
Reader = Callable[[Event, ShopContext], Event | None]


def one_by_one(kind: str, handler: Handler, reader: Reader | None = None) -> Applier:
    """An applier of the two-way paths: each change by itself (a KiotViet order is one POST),
    after reading the source when the change says to (two contents with one version)."""

    def applier(entries: Sequence[Pending], work: Work) -> dict[str, Result]:
        applied = work.ctx.pending.applied(work.shop, kind, [e.entity_id for e in entries])
        results: dict[str, Result] = {}
        for entry in entries:
            if work.out_of_time():  # one KiotViet order after another: the rest in the next batch
                results[entry.entity] = Result(Outcome.RETRYING, error=Postponed("the batch ran out of time"))
                continue
            try:
                event = entry.event
                was_read = reader is not None and entry.needs_read(applied[entry.entity_id])
                if was_read and reader is not None:
                    read = reader(event, work.ctx)
                    if read is None:
                        results[entry.entity] = Result(Outcome.IGNORED)
                        continue
                    event = read
                outcome = handler(event, work.ctx)
                state = Applied(entry.meta.order or 0, entry.meta.fingerprint, work.taken_at if was_read else 0)
                results[entry.entity] = Result(outcome, state)
            except BudgetExhausted as exc:
                results[entry.entity] = Result(Outcome.RETRYING, error=exc)
            except (TransientError, PermanentError) as exc:
                results[entry.entity] = failure(exc)
        return results

    return applier


def read_kiotviet_customer(event: Event, ctx: ShopContext) -> Event | None:
    customer = ctx.kiotviet.customer(int(event.entity_id))
    return None if customer is None else _with_data(event, asdict(customer), customer.modified_date)


def read_kiotviet_order(event: Event, ctx: ShopContext) -> Event | None:
    order = ctx.kiotviet.order(int(event.entity_id))
    return None if order is None else _with_data(event, asdict(order), order.modified_date)


def read_abaha_customer(event: Event, ctx: ShopContext) -> Event | None:
    """The customer as Abaha holds it now: listed from the second of the change's version (Abaha
    has no read of one customer); None when it is no longer listed (deleted)."""
    wanted, page = int(event.entity_id), 1
    while True:
        listed = ctx.abaha.customers_page(event.version, page)
        found = next((c for c in listed.items if c.id == wanted), None)
        if found is not None:
            return _with_data(event, asdict(found), found.updated_at)
        if listed.next_page is None:
            return None
        page = listed.next_page


def _with_data(event: Event, data: dict[str, object], version: str | None) -> Event:
    return replace(event, data=plain_json(data), version=version or event.version)


APPLIERS: dict[str, Applier] = {
    "category": apply_categories,
    "pricebook": apply_price_books,
    "product": apply_products,
    "stock": apply_stock,
    "price": apply_prices,
    "kv_customer": one_by_one("kv_customer", customers.apply_kiotviet_customer, read_kiotviet_customer),
    "kv_order": one_by_one("kv_order", orders.apply_kiotviet_order, read_kiotviet_order),
    "abaha_customer": one_by_one("abaha_customer", customers.apply_abaha_customer, read_abaha_customer),
    "abaha_order": one_by_one("abaha_order", orders.apply_abaha_order),
}
