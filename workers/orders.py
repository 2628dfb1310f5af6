"""Orders: an Abaha order becomes exactly one KiotViet order; KiotViet's status comes back.

Exactly once without an idempotency key at KiotViet: the intent is recorded before the order is
created. Only KiotViet's own refusal (a 4xx answer) says nothing was made and clears it; any
other failure (a timeout, a 5xx, a 524 after the origin did the work) keeps it, and a later
attempt looks for the order the earlier one may have made, by the marker `[abaha:<id>]` in its
description, adopting it. KiotViet may finish such an order minutes late, so the search is
repeated over a window longer than any attempt waits before a new order is made.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime, timedelta
from typing import Any

import structlog

from adapters import clock
from adapters.errors import (
    AbahaRejected,
    KiotVietNotFound,
    KiotVietRejected,
    PermanentError,
    Throttled,
    TransientError,
)
from schemas.abaha import AbahaOrder
from schemas.changes import fingerprint
from schemas.events import Event, Outcome
from schemas.kiotviet_sales import KvOrder
from workers.context import ShopContext
from workers.customers import kiotviet_customer_for_order
from workers.guard import guarded

log = structlog.get_logger(__name__)
MARKER = re.compile(r"\[abaha:(\d+)\]")
ABAHA_STATUS = {3: "completed", 4: "cancelled"}  # KiotViet Hoàn thành, Đã hủy
# how far before an attempt's intent the search for its order reaches
ADOPT_WINDOW = timedelta(minutes=15)
# longer than an attempt can wait for KiotViet's answer to POST /orders (`adapters.http.TIMEOUT`)
SETTLE_SECONDS = 60
# a new order is made only once the order was looked for this often over this long, in vain
ADOPT_SEARCHES = 3
ADOPT_PATIENCE_SECONDS = 600
SEARCH_AGAIN_SECONDS = 180


class OrderRefused(PermanentError):
    """KiotViet refused the order; the message names what to change before a replay."""


def apply_abaha_order(event: Event, ctx: ShopContext) -> Outcome:
    """`order.created` / `order.updated`: make the KiotViet order unless it exists."""
    order = AbahaOrder.from_json(event.data)
    shop = ctx.connection.shop_id
    with ctx.state.entity_lock(shop, "abaha_order", str(order.id)):
        record = ctx.links.order_record(shop, order.id)
        if record and record["state"] == "linked":
            log.info("order.already_in_kiotviet", abaha_order=order.code, kv_order_code=record["kv_code"])
            return Outcome.IGNORED
        if record and record["state"] == "intent":
            record = after_interrupted_attempt(order, record, ctx)
        elif record is None and event.type == "order.updated":
            # the create was lost, or this service's records of the shop were (a deleted and
            # saved-again connection): look before making it
            record = adopt_existing(order, order.created_at, ctx)
        if record is None or record["state"] == "intent":
            record = create_kiotviet_order(order, ctx)
        finish(order, record, ctx)
    return Outcome.APPLIED


def create_kiotviet_order(order: AbahaOrder, ctx: ShopContext) -> dict[str, Any]:
    shop = ctx.connection.shop_id
    body = kiotviet_order_body(order, ctx)
    ctx.links.record_intent(shop, order.id)
    try:
        created = ctx.kiotviet.create_order(body)
    except Throttled as exc:  # refused before it was looked at: nothing was made, the retry makes it
        ctx.links.clear_intent(shop, order.id)
        raise TransientError("KiotViet is throttling the shop (429 to POST /orders); trying again later",
                             exc.retry_after) from exc  # fmt: skip
    except KiotVietRejected as exc:
        if exc.status >= 500 or exc.status == 408:
            raise TransientError(f"KiotViet answered {exc.status} to POST /orders") from exc
        ctx.links.clear_intent(shop, order.id)  # KiotViet's own refusal: nothing was made
        raise OrderRefused(explain_refusal(exc, order, ctx)) from exc
    record = ctx.links.record_created(shop, order.id, created.id, created.code)
    log.info("order.created", abaha_order=order.code, kv_order_code=created.code)
    return record


def after_interrupted_attempt(order: AbahaOrder, record: dict[str, Any], ctx: ShopContext) -> dict[str, Any]:
    """An earlier attempt recorded its intent and did not finish. While it may still be waiting
    for KiotViet's answer, wait; after that, adopt what it made. Found nothing: look again a few
    times over some minutes (KiotViet may finish it late), then make it anew."""
    age = (clock.now() - datetime.fromisoformat(record["since"])).total_seconds()
    if age < SETTLE_SECONDS:
        raise TransientError(
            f"Abaha order {order.code}: an attempt to create it in KiotViet began {int(age)} s ago and "
            "may still be waiting for KiotViet's answer; looking again later", SETTLE_SECONDS - age)  # fmt: skip
    found = adopt_existing(order, record["since"], ctx)
    if found is not None:
        return found
    noted = ctx.links.note_search(ctx.connection.shop_id, order.id, record)
    if noted["searches"] < ADOPT_SEARCHES or age < ADOPT_PATIENCE_SECONDS:
        raise TransientError(
            f"Abaha order {order.code}: an earlier attempt may have created it in KiotViet; not found there "
            f"yet (search {noted['searches']} of {ADOPT_SEARCHES}), looking again before making it",
            SEARCH_AGAIN_SECONDS)  # fmt: skip
    log.warning("order.not_found_after_interruption", abaha_order=order.code, searches=noted["searches"])
    return {"state": "intent"}  # nothing was made: make it


def adopt_existing(order: AbahaOrder, since_text: str | None, ctx: ShopContext) -> dict[str, Any] | None:
    """Find a KiotViet order made from this Abaha order, by the marker in its description."""
    if since_text is None:
        return None
    found = marked_orders(ctx, datetime.fromisoformat(since_text) - ADOPT_WINDOW).get(order.id)
    if not found:
        return None
    first = min(found, key=lambda o: o.id)  # a copy made by hand later carries the marker too
    log.warning("order.adopted", abaha_order=order.code, kv_order_code=first.code)
    return ctx.links.record_created(ctx.connection.shop_id, order.id, first.id, first.code)


def marked_orders(ctx: ShopContext, since: datetime) -> dict[int, list[KvOrder]]:
    """The branch's orders modified since `since` that carry a marker, by the Abaha order named.
    Read once for a batch: the orders of a reconciliation's batch are looked for in one scan."""
    scanned: tuple[datetime, dict[int, list[KvOrder]]] | None = ctx.memo.get("marked_orders")
    if scanned is not None and scanned[0] <= since:
        return scanned[1]
    found: dict[int, list[KvOrder]] = {}
    offset: int | None = 0
    while offset is not None:
        page = ctx.kiotviet.orders_page(ctx.connection.branch_id, offset, since=since.isoformat())
        for item in page.items:
            marked = marker_of(item.description)
            if marked is not None:
                found.setdefault(marked, []).append(item)
        offset = page.next_offset(offset)
    ctx.memo["marked_orders"] = (since, found)
    return found


def finish(order: AbahaOrder, record: dict[str, Any], ctx: ShopContext) -> None:
    """Link the order back on Abaha, and check that both sides agree on the total."""
    ctx.abaha.link_order(order.id, record["kv_id"], record["kv_code"])
    made = ctx.kiotviet.order(record["kv_id"])
    kv_total = made.total if made and made.total is not None else 0
    if kv_total != order.total:
        problem = (f"KiotViet order {record['kv_code']} totals {kv_total} VND but Abaha order {order.code} "
                   f"totals {order.total} VND; check its lines, discounts and fees in KiotViet")  # fmt: skip
        log.error("order.total_mismatch", abaha_order=order.code, kv_total=kv_total, abaha_total=order.total)
        ctx.state.report(ctx.connection.shop_id, problem)
        ctx.state.count(ctx.connection.shop_id, Outcome.TOTAL_MISMATCH)
    ctx.links.record_linked(ctx.connection.shop_id, order.id, record, kv_total=kv_total)


def kiotviet_order_body(order: AbahaOrder, ctx: ShopContext) -> dict[str, Any]:
    """KiotViet's `POST /orders` body, so that its total equals the Abaha order's."""
    connection = ctx.connection
    details, leftover = order_details(order, ctx)
    body: dict[str, Any] = {
        "branchId": connection.branch_id,
        "purchaseDate": order.created_at,
        "discount": order.discount + leftover,
        "description": f"Đơn Abaha {order.code} [abaha:{order.id}]" + (f" - {order.note}" if order.note else ""),
        "totalPayment": 0,
        "makeInvoice": False,
        "orderDetails": details,
        "orderDelivery": delivery(order),
    }
    customer_id = kiotviet_customer_for_order(order, ctx)
    if customer_id is not None:
        body["customer"] = {"id": customer_id}
    if order.fees:
        if not connection.surcharge_code or connection.surcharge_id is None:
            raise OrderRefused(
                f"Abaha order {order.code} has shipping and other fees of {order.fees} VND but the connection has "
                "no surcharge code: create one in KiotViet (Quản lý thu khác), save the connection with "
                "surcharge_code, then replay this job")  # fmt: skip
        body["surchages"] = [{"id": connection.surcharge_id, "code": connection.surcharge_code, "price": order.fees}]
    return body


def order_details(order: AbahaOrder, ctx: ShopContext) -> tuple[list[dict[str, Any]], int]:
    """The lines (each naming the KiotViet row sold: a variant, a case), and what part of line
    discounts cannot be spread per unit (it goes to the order's discount)."""
    details, leftover = [], 0
    for item in order.items:
        per_unit, rest = divmod(item.discount, item.quantity)  # KiotViet's line discount is per unit
        leftover += rest
        details.append({"productId": item.kv_product_id or product_id_for(item.sku, order, ctx),
                        "productCode": item.sku, "productName": item.name, "quantity": item.quantity,
                        "price": item.unit_price, "discount": per_unit})  # fmt: skip
    return details, leftover


def product_id_for(sku: str, order: AbahaOrder, ctx: ShopContext) -> int:
    try:
        return ctx.kiotviet.product_by_code(sku).id
    except KiotVietNotFound as exc:
        raise OrderRefused(
            f"Abaha order {order.code} has product code {sku}, which does not exist in KiotViet: correct the "
            "product's code (SKU) so both sides agree, then replay this job") from exc  # fmt: skip


def delivery(order: AbahaOrder) -> dict[str, Any]:
    to = order.shipping_address or order.customer
    if to is None:
        return {}
    location = " - ".join(part for part in (to.province, to.district) if part)
    fields = {"receiver": to.name, "contactNumber": to.phone, "address": to.address,
              "locationName": location or None, "wardName": to.ward}  # fmt: skip
    return {k: v for k, v in fields.items() if v is not None}  # never a null KiotViet would store


def explain_refusal(exc: KiotVietRejected, order: AbahaOrder, ctx: ShopContext) -> str:
    """KiotViet's refusal in words that tell the operator what to change, then replay."""
    said = exc.kiotviet_message or str(exc)
    text = unicodedata.normalize("NFC", said).lower()
    head = f"KiotViet refused Abaha order {order.code}"
    if "tồn kho" in text or "out of stock" in text:
        return (f"{head}: not enough stock at branch {ctx.connection.branch_id}. Turn on 'Cho phép đặt hàng khi "
                "hết tồn kho' (bán âm) in KiotViet's Thiết lập cửa hàng, or restock, then replay this job. "
                f"KiotViet said: {said}")  # fmt: skip
    if "cho phép đặt hàng" in text:
        return (f"{head}: ordering is turned off. Turn on 'Cho phép đặt hàng' in KiotViet's Thiết lập cửa hàng, "
                f"then replay this job. KiotViet said: {said}")  # fmt: skip
    if "thu khác" in text or "surcharge" in text:
        return (f"{head}: the surcharge code {ctx.connection.surcharge_code} is not usable. Check it in "
                "KiotViet (Quản lý thu khác), save the connection again, then replay this job. "
                f"KiotViet said: {said}")  # fmt: skip
    return f"{head}: {said}"


def apply_kiotviet_order(event: Event, ctx: ShopContext) -> Outcome:
    """KiotViet status 3 completes and 4 cancels the Abaha order it was made from."""
    order = KvOrder(**event.data)
    abaha_id = abaha_order_of(order, ctx)
    if abaha_id is None:
        log.info("order.not_from_abaha", kv_order_code=order.code)
        return Outcome.IGNORED
    status = ABAHA_STATUS.get(order.status or 0)
    log.info("order.kiotviet_status", kv_order_code=order.code, status=order.status, status_value=order.status_value)
    if status is None:
        return Outcome.IGNORED

    def write() -> None:
        body = {"status": status, "kv_order_code": order.code, "changed_at": order.modified_date or event.version}
        try:
            ctx.abaha.set_order_status(abaha_id, body)
        except AbahaRejected as exc:
            if exc.code != "status_final":
                raise
            # Abaha already holds the other final status: its answer is final, not retried
            log.warning("order.status_final", abaha_order_id=abaha_id, wanted=status)

    return guarded(ctx, "kv_order_status", str(order.id), event.version_micros, fingerprint(status), write)


def abaha_order_of(order: KvOrder, ctx: ShopContext) -> int | None:
    """The Abaha order this KiotViet order was made from. The marker in its description is
    trusted only when that Abaha order has no link yet, or its link is this order: an order
    copied by hand in KiotViet carries the marker too, and must not move the original."""
    shop = ctx.connection.shop_id
    linked = ctx.links.abaha_order_for(shop, order.id)
    if linked is not None:
        return linked
    marked = marker_of(order.description)
    if marked is None:
        return None
    record = ctx.links.order_record(shop, marked)
    if record is not None and record["state"] == "intent":
        # its creation is unresolved: this may be the order it made or a copy of it; the
        # adoption decides, and this change waits for it
        raise TransientError(
            f"KiotViet order {order.code} names Abaha order {marked}, whose creation in KiotViet is not "
            "settled yet; applying its status after that", SETTLE_SECONDS)  # fmt: skip
    if record is not None and record.get("kv_id") not in (None, order.id):
        log.info("order.copy_ignored", kv_order_code=order.code, abaha_order_id=marked, linked_to=record.get("kv_id"))
        return None
    return marked


def marker_of(description: Any) -> int | None:
    found = MARKER.search(description) if isinstance(description, str) else None
    return int(found.group(1)) if found else None
