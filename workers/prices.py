"""Prices of price books, KiotViet → Abaha. A `pricebookdetail.*` item carries no time, so the
batch reads the current prices from KiotViet: a whole price book page by page when that is
fewer requests than reading its products one by one (each product read answers every book's
price of that product), then upserts each list's prices 500 a call and deletes the rest."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

import structlog

from adapters.errors import AbahaNotFound, PermanentError, TransientError
from adapters.kiotviet import PAGE_SIZE, BudgetExhausted
from adapters.pending import Applied, Pending
from schemas.events import Outcome
from workers.apply import Postponed, Result, Work, failure
from workers.categories import price_list_body

log = structlog.get_logger(__name__)
NO_PRICE = -1  # the book has no price for the product (removed, or the product is gone)


def apply_prices(entries: Sequence[Pending], work: Work) -> dict[str, Result]:
    """Every price of the batch as KiotViet holds it now."""
    applied = work.ctx.pending.applied(work.shop, "price", [e.entity_id for e in entries])
    wanted: dict[int, set[int]] = defaultdict(set)
    current: dict[tuple[int, int], int] = {}
    for entry in entries:
        book, product = (int(part) for part in entry.entity_id.split(":"))
        if entry.meta.order is not None and not entry.needs_read(applied[entry.entity_id]):
            current[(book, product)] = int(entry.event.data["price"])  # read with a price book's page
        else:
            wanted[book].add(product)
    current.update(read_prices(wanted, work))
    results: dict[str, Result] = {}
    upserts: dict[int, list[tuple[Pending, int, Applied]]] = defaultdict(list)
    for entry in entries:
        book, product = (int(part) for part in entry.entity_id.split(":"))
        if (book, product) not in current:  # reads of KiotViet took the batch's time: the next batch
            results[entry.entity] = Result(Outcome.RETRYING, error=Postponed("the batch ran out of time"))
            continue
        price = current[(book, product)]
        state = Applied(entry.meta.order or work.read_order, str(price), work.taken_at)
        before = applied[entry.entity_id]
        if before is not None and before.fingerprint == state.fingerprint and not work.repair:
            results[entry.entity] = Result(Outcome.UNCHANGED, state)
        elif price == NO_PRICE:
            results[entry.entity] = delete_price(book, product, state, work)
        else:
            upserts[book].append((entry, price, state))
    for book, rows in upserts.items():
        results.update(upsert_prices(book, rows, work))
    return results


def read_prices(wanted: dict[int, set[int]], work: Work) -> dict[tuple[int, int], int]:
    """(book, product) → price now, for every pair wanted, as many as the batch's time allows."""
    found: dict[tuple[int, int], int] = {}
    by_product: set[int] = set()
    for book, products in wanted.items():
        offset: int | None = 0
        while offset is not None:
            page = work.ctx.kiotviet.prices_page(book, offset)
            found.update({(book, p.product_id): p.price for p in page.items if p.product_id in products})
            offset = page.next_offset(offset)
            left = products - {p for b, p in found if b == book}
            if offset is not None and math.ceil((page.total - offset) / PAGE_SIZE) > len(left):
                by_product |= left  # fewer requests product by product
                break
            if offset is None:
                found.update({(book, p): NO_PRICE for p in left})
    for product_id in sorted(by_product):
        if work.out_of_time():
            break  # the rest are not read: the next batch reads them
        product = work.ctx.kiotviet.product(product_id)
        prices = {p.price_book_id: p.price for p in (product.price_books or ())} if product else {}
        for book, products in wanted.items():
            if product_id in products and (book, product_id) not in found:
                found[(book, product_id)] = prices.get(book, NO_PRICE)
    return found


def upsert_prices(book: int, rows: list[tuple[Pending, int, Applied]], work: Work) -> dict[str, Result]:
    """The book's prices in calls of 500; a list Abaha does not have yet is made first."""
    body = [{"product_kv_id": int(entry.entity_id.split(":")[1]), "price": price} for entry, price, _ in rows]
    try:
        try:
            work.ctx.abaha.put_prices(book, body)
        except AbahaNotFound:
            listed = {b.id: b for b in work.ctx.kiotviet.price_books()}
            if book not in listed:
                raise PermanentError(f"price book {book} is not in KiotViet's list of price books") from None
            work.ctx.abaha.put_price_list(book, price_list_body(listed[book]))
            work.ctx.abaha.put_prices(book, body)
    except BudgetExhausted:
        raise
    except (TransientError, PermanentError) as exc:
        return {entry.entity: failure(exc) for entry, _, _ in rows}
    return {entry.entity: Result(Outcome.APPLIED, state) for entry, _, state in rows}


def delete_price(book: int, product: int, state: Applied, work: Work) -> Result:
    try:
        work.ctx.abaha.delete_price(book, product)
    except BudgetExhausted:
        raise
    except (TransientError, PermanentError) as exc:
        return failure(exc)
    return Result(Outcome.APPLIED, state)
