"""Stock, KiotViet → Abaha: `stock.update` says *this changed*, KiotViet says *to what*.

A stock item carries no modification time and KiotViet resends failed deliveries late, so the
value in an item is never written: the batch reads the current stock of all its products from
KiotViet at once (pages of `/productOnHands` changed since just before the oldest signal, or
product by product when that is fewer requests), then patches Abaha 100 products a call. A base
row's stock change also sets its unit rows' (`floor(base / conversion)`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

import structlog

from adapters.errors import PermanentError, TransientError
from adapters.kiotviet import PAGE_SIZE, BudgetExhausted
from adapters.pending import Applied, Pending
from schemas.changes import Change, Mode, stock_fingerprint
from schemas.events import Event, Outcome, event_id, iso_from_ms
from schemas.kiotviet import VIETNAM
from workers.apply import Postponed, Result, Work, failure
from workers.products import sellable, stock_signal, whole_units

log = structlog.get_logger(__name__)
# KiotViet's clock may be behind Redis's and a webhook leaves after the change: a read from this
# long before a signal still sees the change (a later one costs a request of its own, no more)
READ_MARGIN_MS = 120_000
MISSING = -1  # KiotViet has no such product any more


def apply_stock(entries: Sequence[Pending], work: Work) -> dict[str, Result]:
    """Read what is current for every product of the batch, write what changed."""
    results: dict[str, Result] = {}
    records = work.ctx.catalog.records(work.shop, [int(e.entity_id) for e in entries])
    own: list[Pending] = []
    for entry in entries:
        record = records.get(int(entry.entity_id))
        if record is not None and record.base_id:  # a unit row's stock is its base row's
            work.follow_ups.append(stock_signal(work, record.base_id))
            results[entry.entity] = Result(Outcome.COALESCED)
        else:
            own.append(entry)
    applied = work.ctx.pending.applied(work.shop, "stock", [e.entity_id for e in own])
    values: dict[str, tuple[int, int, int]] = {}  # entity → (value, order, read_at)
    to_read = []
    for entry in own:
        current = applied[entry.entity_id]
        if entry.meta.order is not None and not entry.needs_read(current):
            # a value read by reconciliation or a full sync, as of its read
            values[entry.entity] = (
                int(entry.event.data["sellable"]),
                entry.meta.order,
                current.read_at if current else 0,
            )
        else:
            to_read.append(entry)
    for product_id, value in read_current(to_read, work).items():
        values[f"stock:{product_id}"] = (value, work.read_order, work.taken_at)
    for entry in to_read:
        if entry.entity not in values:  # reads of KiotViet took the batch's time: the next batch
            results[entry.entity] = Result(Outcome.RETRYING, error=Postponed("the batch ran out of time"))
    results.update(write_stock([e for e in own if e.entity in values], values, applied, work))
    return results


def read_current(entries: Sequence[Pending], work: Work) -> dict[int, int]:
    """Each product's sellable stock at the branch now (MISSING when KiotViet has no such
    product), as many as the batch's time allows: pages of recent changes while that is cheaper
    than a request per product. What the pages show of products waiting in later batches (a stock
    count of the whole shop) is made pending with them as read, so their batches need no read of
    their own."""
    wanted = {int(e.entity_id) for e in entries}
    if not wanted:
        return {}
    since_ms = min(e.meta.signal_at or work.taken_at for e in entries) - READ_MARGIN_MS
    since_ms -= since_ms % 60_000  # to the minute: batches of one delivery ask the same, and go on (below)
    since = datetime.fromtimestamp(since_ms / 1000, VIETNAM).isoformat(timespec="seconds")
    found: dict[int, int] = {}
    # a read of the same changes that an earlier batch stopped (its products found, or out of
    # time) goes on from there: what its pages showed was applied or made pending as read then,
    # and a product changed since has moved to the end of the changes
    since, start = work.ctx.catalog.stock_cursor(work.shop, since)
    offset: int | None = start
    stopped = False  # the read stopped for time: the next batch goes on with it
    while offset is not None:
        page = work.ctx.kiotviet.stock_page(work.branch, offset, since=since)
        values = {r.product_id: sellable(i.on_hand, i.reserved) if (i := r.at(work.branch)) else 0 for r in page.items}
        found.update({p: v for p, v in values.items() if p in wanted})
        shared = share_reads(work, {p: v for p, v in values.items() if p not in wanted})
        offset = page.next_offset(offset)
        left = len(wanted - found.keys())
        pages_left = math.ceil((page.total - offset) / PAGE_SIZE) if offset is not None else 0
        if (not left and not shared) or (left and pages_left > left + work.pending_left):
            break  # nothing more to learn here, or fewer requests to read the rest one by one
        # its slice is over and the batch has products to write (or the batch's time is up):
        # the read goes on in the shop's next batch, behind other shops'
        if (work.slice_over() and (found or not left)) or (work.out_of_time() and left):
            stopped = offset is not None and bool(left)
            break
    work.ctx.catalog.save_stock_cursor(work.shop, since, offset)  # where the shop's next batch goes on
    for product_id in [] if stopped else sorted(wanted - found.keys()):
        if work.out_of_time() or (work.slice_over() and found):
            break  # the rest are not read: the next batch reads them
        product = work.ctx.kiotviet.product(product_id)
        inventory = product.inventory_at(work.branch) if product else None
        found[product_id] = (
            MISSING if product is None else sellable(inventory.on_hand, inventory.reserved) if inventory else 0
        )
    return found


def write_stock(
    entries: Sequence[Pending], values: dict[str, tuple[int, int, int]], applied: dict[str, Applied | None], work: Work
) -> dict[str, Result]:
    """Patch what differs from what Abaha was last given, base rows with their unit rows."""
    results, changed, items = plan_stock(entries, values, applied, work)
    if not changed:
        return results
    try:
        answers = {a.kv_id: a for a in work.ctx.abaha.patch_products(items)}
    except BudgetExhausted:
        raise
    except (TransientError, PermanentError) as exc:
        return {**results, **{entry.entity: failure(exc) for entry, _ in changed.values()}}
    ok = {i["kv_id"]: i["stock"] for i in items if i["kv_id"] in answers and answers[i["kv_id"]].status != "error"}
    for pid, (entry, state) in changed.items():
        answer = answers.get(pid)
        if answer is not None and answer.status == "error":
            error = PermanentError(f"Abaha refused the stock of product {pid}: {answer.error}")
            results[entry.entity] = Result(Outcome.FAILED, error=error)
            continue
        results[entry.entity] = Result(Outcome.APPLIED, state)
        if answer is not None and answer.status == "not_found":  # Abaha has not seen it yet: send all of it
            work.follow_ups.append(product_check(work, pid))
    work.ctx.catalog.save_stock_values(work.shop, ok)
    return results


def plan_stock(
    entries: Sequence[Pending], values: dict[str, tuple[int, int, int]], applied: dict[str, Applied | None], work: Work
) -> tuple[dict[str, Result], dict[int, tuple[Pending, Applied]], list[dict[str, int]]]:
    """Which entities need a write, and the items of that write: the base row when its stock
    differs from what Abaha was given, and each unit row whose stock does (a unit row may have
    been written before its base row's stock was known)."""
    ids = [int(e.entity_id) for e in entries]
    units = work.ctx.catalog.units_of(work.shop, ids)
    known = work.ctx.catalog.stock_values(work.shop, ids + [u for listed in units.values() for u in listed])
    results: dict[str, Result] = {}
    changed: dict[int, tuple[Pending, Applied]] = {}
    items: list[dict[str, int]] = []
    for entry in entries:
        value, order, read_at = values[entry.entity]
        current, pid = applied[entry.entity_id], int(entry.entity_id)
        state = Applied(order, stock_fingerprint(value), read_at)
        if current is not None and order < current.order:
            results[entry.entity] = Result(Outcome.STALE, current)
            continue
        wanted = [] if value == MISSING or known.get(pid) == value else [{"kv_id": pid, "stock": value}]
        for unit, conversion in units.get(pid, {}).items() if value != MISSING else ():
            if known.get(unit) != whole_units(value, conversion):
                wanted.append({"kv_id": unit, "stock": whole_units(value, conversion)})
        if wanted:
            changed[pid] = (entry, state)
            items += wanted
        else:
            results[entry.entity] = Result(Outcome.UNCHANGED, state)
    return results, changed, items


def share_reads(work: Work, values: dict[int, int]) -> int:
    """Values read for this batch of products pending in later ones: made pending as read.
    Answers how many there were."""
    waiting = work.ctx.pending.which_pending(work.shop, [f"stock:{p}" for p in values])
    work.follow_ups += [stock_read(work.shop, work.branch, int(e.split(":")[1]), values[int(e.split(":")[1])],
                                   work.taken_at) for e in sorted(waiting)]  # fmt: skip
    return len(waiting)


def product_check(work: Work, product_id: int) -> Change:
    """ "Read this product and write it": for a product Abaha does not have yet."""
    event = Event(id=event_id("product-check", work.shop, product_id, work.taken_at), source="kiotviet",
                  type="product.update", shop_id=work.shop, entity_id=str(product_id),
                  version=iso_from_ms(work.taken_at), received_at=iso_from_ms(work.taken_at),
                  data={"id": product_id})  # fmt: skip
    return Change(event, f"product:{product_id}", Mode.SIGNAL)


def stock_read(shop_id: str, branch_id: int, product_id: int, value: int, read_ms: int) -> Change:
    """A stock value read from KiotViet (a full-sync page, a reconciliation pull)."""
    event = Event(id=event_id("stock-read", shop_id, product_id, read_ms, value), source="kiotviet",
                  type="stock.update", shop_id=shop_id, entity_id=str(product_id),
                  version=iso_from_ms(read_ms), received_at=iso_from_ms(read_ms),
                  data={"product_id": product_id, "branch_id": branch_id, "sellable": value})  # fmt: skip
    return Change(event, f"stock:{product_id}", Mode.READ, read_ms * 1000, stock_fingerprint(value))
