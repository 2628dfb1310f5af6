"""Categories and price lists, KiotViet → Abaha: upserted, and deleted when KiotViet deleted them.

A delete carries no time, so it is checked against KiotViet when applied: a category KiotViet
still has is written, not deleted, whatever order the deliveries came in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from typing import Any

from adapters.errors import PermanentError, TransientError
from adapters.kiotviet import BudgetExhausted
from adapters.pending import Applied, Pending
from schemas.changes import Mode, fingerprint, micros_of
from schemas.events import Outcome, plain_json
from schemas.kiotviet import KvCategory, KvPriceBook
from workers.apply import Result, Work, failure, read_at_of

GONE_ORDER = 2**52  # deleted in KiotViet: gone for good, whatever arrives late


def apply_categories(entries: Sequence[Pending], work: Work) -> dict[str, Result]:
    def read(entity_id: str) -> KvCategory | None:
        return work.ctx.kiotviet.category(int(entity_id))

    def put(category: Any) -> None:
        if category.name is None:  # a thin body: the name is what Abaha needs
            category = work.ctx.kiotviet.category(category.id) or category
        work.ctx.abaha.put_category(category.id, {"name": category.name, "parent_kv_id": category.parent_id or None})

    return apply_each(
        entries, work, "category", KvCategory, read, put, lambda i: work.ctx.abaha.delete_category(int(i))
    )


def apply_price_books(entries: Sequence[Pending], work: Work) -> dict[str, Result]:
    listed: dict[int, KvPriceBook] | None = None

    def read(entity_id: str) -> KvPriceBook | None:
        nonlocal listed  # one read of the list for the whole batch (`/pricebooks/{id}` is its prices)
        if listed is None:
            listed = {book.id: book for book in work.ctx.kiotviet.price_books()}
        return listed.get(int(entity_id))

    def put(book: Any) -> None:
        if book.name is None:
            book = read(str(book.id)) or book
        work.ctx.abaha.put_price_list(book.id, price_list_body(book))

    return apply_each(
        entries, work, "pricebook", KvPriceBook, read, put, lambda i: work.ctx.abaha.delete_price_list(int(i))
    )


def price_list_body(book: KvPriceBook) -> dict[str, Any]:
    """A price list's name and whether it is active; its validity dates are not synced."""
    return {"name": book.name, "active": book.is_active is not False}


def apply_each(
    entries: Sequence[Pending],
    work: Work,
    kind: str,
    content: type[Any],
    read: Callable[[str], Any],
    put: Callable[[Any], None],
    delete: Callable[[str], None],
) -> dict[str, Result]:
    """One call per entity: the newest content upserted, or deleted when KiotViet has it no more."""
    applied = work.ctx.pending.applied(work.shop, kind, [e.entity_id for e in entries])
    results: dict[str, Result] = {}
    for entry in entries:
        current = applied[entry.entity_id]
        try:
            results[entry.entity] = apply_one(entry, current, work, content, read, put, delete)
        except BudgetExhausted:
            raise
        except (TransientError, PermanentError) as exc:
            results[entry.entity] = failure(exc)
    return results


def apply_one(
    entry: Pending,
    current: Applied | None,
    work: Work,
    content: type[Any],
    read: Callable[[str], Any],
    put: Callable[[Any], None],
    delete: Callable[[str], None],
) -> Result:
    read_now = entry.meta.order is None or entry.needs_read(current)
    item = read(entry.entity_id) if read_now else content(**entry.event.data)
    read_at = read_at_of(entry, read_now, current, work)
    was_read = read_now or entry.meta.mode is Mode.READ
    if item is None:
        if current is not None and current.order == GONE_ORDER:
            return Result(Outcome.UNCHANGED, replace(current, read_at=read_at))
        delete(entry.entity_id)
        return Result(Outcome.APPLIED, Applied(GONE_ORDER, "gone", read_at))
    state = Applied(micros_of(item.modified_date, work.read_order), fingerprint(plain_json(asdict(item))), read_at)
    if current is not None and not current.is_older_than(state.order, state.fingerprint, repair=work.repair):
        return Result(
            Outcome.UNCHANGED if was_read else Outcome.STALE, replace(current, read_at=max(current.read_at, read_at))
        )
    put(item)
    return Result(Outcome.APPLIED, state)
