"""Orders: an Abaha order becomes exactly one KiotViet order; KiotViet's status comes back.

Exactly once without an idempotency key at KiotViet: the intent is recorded before the order
is created, and a retry that finds an intent looks for the order a crashed attempt made (by
the marker `[abaha:<id>]` in its description) and adopts it instead of creating another.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from adapters.errors import AbahaRejected, KiotVietNotFound, KiotVietRejected, PermanentError, TransientError
from schemas.abaha import AbahaOrder
from schemas.events import Event
from schemas.kiotviet import KvOrder
from workers.catalog import APPLIED, IGNORED, guarded
from workers.context import ShopContext
from workers.customers import kiotviet_customer_for_order

log = structlog.get_logger(__name__)
MARKER = re.compile(r"\[abaha:(\d+)\]")
ABAHA_STATUS = {3: "completed", 4: "cancelled"}  # KiotViet Hoàn thành, Đã hủy
ADOPT_WINDOW = timedelta(minutes=15)
# longer than an attempt can wait for KiotViet's answer to POST /orders (30 s read timeout)
SETTLE_SECONDS = 60


class OrderRefused(PermanentError):
    """KiotViet refused the order; the message names what to change before a replay."""


def apply_abaha_order(event: Event, ctx: ShopContext) -> str:
    """`order.created` / `order.updated`: make the KiotViet order unless it exists."""
    order = AbahaOrder.from_json(event.data)
    shop = ctx.connection.shop_id
    with ctx.state.entity_lock(shop, "abaha_order", str(order.id)):
        record = ctx.links.order_record(shop, order.id)
        if record and record["state"] == "linked":
            log.info("order.already_in_kiotviet", abaha_order=order.code, kv_order_code=record["kv_code"])
            return IGNORED
        if record and record["state"] == "intent":
            record = after_interrupted_attempt(order, record, ctx)
        elif record is None and event.type == "order.updated":
            # the create was lost, or this service's records of the shop were (a deleted and
            # saved-again connection): look before making it
            record = adopt_existing(order, order.created_at, ctx)
        if record is None or record["state"] == "intent":
            record = create_kiotviet_order(order, ctx)
        finish(order, record, ctx)
    return APPLIED


def create_kiotviet_order(order: AbahaOrder, ctx: ShopContext) -> dict[str, Any]:
    shop = ctx.connection.shop_id
    body = kiotviet_order_body(order, ctx)
    ctx.links.record_intent(shop, order.id)
    try:
        answer = ctx.kiotviet.create_order(body)
    except KiotVietRejected as exc:
        ctx.links.clear_intent(shop, order.id)  # refused: nothing was made, a replay may try again
        raise OrderRefused(explain_refusal(exc, order, ctx)) from exc
    record = ctx.links.record_created(shop, order.id, int(answer["id"]), str(answer["code"]))
    log.info("order.created", abaha_order=order.code, kv_order_code=record["kv_code"])
    return record


def after_interrupted_attempt(order: AbahaOrder, record: dict[str, Any], ctx: ShopContext) -> dict[str, Any] | None:
    """An earlier attempt recorded its intent and did not finish. While it may still be waiting
    for KiotViet's answer, wait; after that, adopt what it made, if anything."""
    age = (datetime.now(UTC) - datetime.fromisoformat(record["since"])).total_seconds()
    if age < SETTLE_SECONDS:
        raise TransientError(
            f"Abaha order {order.code}: an attempt to create it in KiotViet began {int(age)} s ago and "
            "may still be waiting for KiotViet's answer; looking again later", SETTLE_SECONDS - age)  # fmt: skip
    return adopt_existing(order, record["since"], ctx)


def adopt_existing(order: AbahaOrder, since_text: str | None, ctx: ShopContext) -> dict[str, Any] | None:
    """Find a KiotViet order made from this Abaha order, by the marker in its description."""
    if since_text is None:
        return None
    since = datetime.fromisoformat(since_text) - ADOPT_WINDOW
    params = {"branchIds": ctx.connection.branch_id, "lastModifiedFrom": since.isoformat()}
    for page in ctx.kiotviet.pages("/orders", params):
        for item in page.get("data") or []:
            if marker_of(item.get("description")) == order.id:
                log.warning("order.adopted", abaha_order=order.code, kv_order_code=item.get("code"))
                return ctx.links.record_created(ctx.connection.shop_id, order.id, int(item["id"]), str(item["code"]))
    return None


def finish(order: AbahaOrder, record: dict[str, Any], ctx: ShopContext) -> None:
    """Link the order back on Abaha, and check that both sides agree on the total."""
    ctx.abaha.link_order(order.id, record["kv_id"], record["kv_code"])
    kv_total = round(float(ctx.kiotviet.order(record["kv_id"]).get("total") or 0))
    if kv_total != order.total:
        problem = (f"KiotViet order {record['kv_code']} totals {kv_total} VND but Abaha order {order.code} "
                   f"totals {order.total} VND; check its lines, discounts and fees in KiotViet")  # fmt: skip
        log.error("order.total_mismatch", abaha_order=order.code, kv_total=kv_total, abaha_total=order.total)
        ctx.state.report(ctx.connection.shop_id, problem)
        ctx.state.count(ctx.connection.shop_id, "total_mismatch")
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
    """The lines, and what part of line discounts cannot be spread per unit (goes to the order)."""
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
    return {"receiver": to.name, "contactNumber": to.phone, "address": to.address,
            "locationName": location or None, "wardName": to.ward}  # fmt: skip


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


def apply_kiotviet_order(event: Event, ctx: ShopContext) -> str:
    """KiotViet status 3 completes and 4 cancels the Abaha order it was made from."""
    order = KvOrder(**event.data)
    abaha_id = ctx.links.abaha_order_for(ctx.connection.shop_id, order.id) or marker_of(order.description)
    if abaha_id is None:
        log.info("order.not_from_abaha", kv_order_code=order.code)
        return IGNORED
    status = ABAHA_STATUS.get(order.status or 0)
    log.info("order.kiotviet_status", kv_order_code=order.code, status=order.status, status_value=order.status_value)
    if status is None:
        return IGNORED

    def write() -> None:
        body = {"status": status, "kv_order_code": order.code, "changed_at": order.modified_date or event.version}
        try:
            ctx.abaha.set_order_status(abaha_id, body)
        except AbahaRejected as exc:
            if exc.code != "status_final":
                raise
            # Abaha already holds the other final status: its answer is final, not retried
            log.warning("order.status_final", abaha_order_id=abaha_id, wanted=status)

    return guarded(ctx, event, "kv_order", str(order.id), write)


def apply_kiotviet_invoice(event: Event, ctx: ShopContext) -> str:
    """Recorded only: an order's Abaha status follows the order's own status (docs/decisions.md)."""
    invoice = KvOrder(**event.data)
    log.info("invoice.recorded", kv_invoice_code=invoice.code, kv_order_code=invoice.order_code, status=invoice.status)
    return IGNORED


def ignore_abaha_status_change(event: Event, ctx: ShopContext) -> str:
    """Status belongs to KiotViet: a change made on Abaha is never applied anywhere."""
    log.info("order.abaha_status_change_ignored", abaha_order_id=event.entity_id, status=event.data.get("status"))
    return IGNORED


def marker_of(description: Any) -> int | None:
    found = MARKER.search(description) if isinstance(description, str) else None
    return int(found.group(1)) if found else None
