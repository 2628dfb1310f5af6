"""The simulated Abaha's orders and customers, and the events it posts to the service."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import requests
from flask import Blueprint, Response, jsonify, request

from sandbox.abaha import AbahaSandbox, AbahaShop, check_request, error
from sandbox.phones import same_phone

VIETNAM = timezone(timedelta(hours=7))
FINAL = ("completed", "cancelled")
CUSTOMER_FIELDS = ("name", "phone", "email", "gender", "birth_date", "address")


def now_text(timespec: str = "seconds") -> str:
    """Abaha's timestamps have one-second resolution: `2026-11-30T10:15:00+07:00`."""
    return datetime.now(VIETNAM).isoformat(timespec=timespec)


def post_event(shop_id: str, shop: AbahaShop, kind: str, data: dict[str, Any], event_id: str | None = None) -> Any:
    """Send one event as Abaha does: the shop's token header and, when it signs, the HMAC."""
    if not shop.webhook_url or not shop.webhook_token:
        return "no webhook configured"
    body = json.dumps({"id": event_id or f"evt_{uuid.uuid4().hex[:12]}", "type": kind, "shop_id": shop_id,
                       "occurred_at": now_text(shop.timespec), "data": data}, ensure_ascii=False).encode()  # fmt: skip
    headers = {"Content-Type": "application/json", "X-Abaha-Token": shop.webhook_token}
    if shop.sign_events:
        digest = hmac.new(shop.webhook_token.encode(), body, hashlib.sha256).hexdigest()
        headers["X-Abaha-Signature"] = f"sha256={digest}"
    try:
        return requests.post(shop.webhook_url, data=body, headers=headers, timeout=5).status_code
    except requests.RequestException as exc:
        return f"error: {type(exc).__name__}"


def api_routes(sandbox: AbahaSandbox) -> Blueprint:
    bp = Blueprint("abaha_sales", __name__, url_prefix="/abaha/v1/shops/<shop_id>")
    bp.before_request(lambda: check_request(sandbox))

    @bp.put("/orders/<order_id>/kiotviet")
    def link_order(shop_id: str, order_id: str) -> Any:
        order = sandbox.shops[shop_id].orders.get(order_id)
        if order is None:
            return error(404, "not_found", "no such order")
        order["kiotviet"] = request.get_json(force=True)
        return jsonify(ok=True), 200

    @bp.put("/orders/<order_id>/status")
    def set_status(shop_id: str, order_id: str) -> Any:
        order = sandbox.shops[shop_id].orders.get(order_id)
        if order is None:
            return error(404, "not_found", "no such order")
        wanted = (request.get_json(force=True) or {}).get("status")
        if wanted not in FINAL:
            return error(422, "invalid", "status must be completed or cancelled")
        if order["status"] in FINAL and order["status"] != wanted:
            return error(409, "status_final", f"order is already {order['status']}")
        order.update(status=wanted, updated_at=now_text(sandbox.shops[shop_id].timespec))
        return jsonify(ok=True), 200

    @bp.put("/customers/by-kiotviet/<int:kv_id>")
    def put_customer(shop_id: str, kv_id: int) -> Any:
        shop = sandbox.shops[shop_id]
        body = request.get_json(force=True) or {}
        with sandbox.lock:
            current = _linked(shop, kv_id, body.get("abaha_id"))
            created = current is None
            customer = current or {"id": sandbox_customer_id(shop), "kv_id": kv_id}
            before = {k: customer.get(k) for k in CUSTOMER_FIELDS}
            customer.update(
                {k: body.get(k) for k in CUSTOMER_FIELDS if k in body}, kv_id=kv_id, updated_at=now_text(shop.timespec)
            )
            shop.customers[str(customer["id"])] = customer
            changed = created or before != {k: customer.get(k) for k in CUSTOMER_FIELDS}
        if changed:  # Abaha tells its webhook about every customer change, ours included
            kind = "customer.created" if created else "customer.updated"
            threading.Thread(target=post_event, args=(shop_id, shop, kind, dict(customer)), daemon=True).start()
        return jsonify(id=customer["id"]), 201 if created else 200

    @bp.get("/orders")
    def orders(shop_id: str) -> Any:
        with sandbox.lock:
            return _changed_since(list(sandbox.shops[shop_id].orders.values()))

    @bp.get("/customers")
    def customers(shop_id: str) -> Any:
        with sandbox.lock:
            listed = list(sandbox.shops[shop_id].customers.values())
            if "phone" in request.args:  # the shop's customers with that number, in any of its forms
                phone = request.args["phone"]
                return jsonify(data=[c for c in listed if same_phone(c.get("phone"), phone)], next_page=None)
            return _changed_since(listed)

    return bp


def sandbox_customer_id(shop: AbahaShop) -> int:
    return 1000 + len(shop.customers) + 1


def _linked(shop: AbahaShop, kv_id: int, abaha_id: Any) -> dict[str, Any] | None:
    if abaha_id is not None and str(abaha_id) in shop.customers:
        return shop.customers[str(abaha_id)]
    return next((c for c in shop.customers.values() if c.get("kv_id") == kv_id), None)


def _changed_since(items: list[dict[str, Any]]) -> Response | tuple[Response, int]:
    """A page of `items` updated at or after `updated_since`, by `updated_at` then id."""
    since = request.args.get("updated_since")
    try:
        per_page = max(min(int(request.args.get("per_page", 100)), 100), 1)
        number = max(int(request.args.get("page", 1)), 1)
        moment = _moment(since) if since else None
    except ValueError as exc:
        return error(422, "invalid", str(exc))
    if moment is not None:
        items = [i for i in items if _moment(i["updated_at"]) >= moment]
    items.sort(key=lambda i: (_moment(i["updated_at"]), isinstance(i["id"], str), i["id"]))
    chunk = items[(number - 1) * per_page : number * per_page]
    more = number * per_page < len(items)
    return jsonify(data=chunk, next_page=number + 1 if more else None)


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=VIETNAM)


def control_routes(sandbox: AbahaSandbox) -> Blueprint:  # noqa: C901 - one small closure per route
    bp = Blueprint("abaha_sales_control", __name__, url_prefix="/_sandbox/abaha/shops/<shop_id>")

    @bp.post("/webhook")
    def configure(shop_id: str) -> Response:
        """What the shop types into Abaha's webhook settings: the URL and the token header."""
        shop = sandbox.shops[shop_id]
        body = request.get_json(force=True) or {}
        shop.webhook_url, shop.webhook_token = body["url"], body["token"]
        shop.sign_events = bool(body.get("sign", True))
        return jsonify(ok=True)

    @bp.post("/orders")
    def place_order(shop_id: str) -> Response:
        """A customer places an order on the website: stored, and `order.created` posted."""
        shop = sandbox.shops[shop_id]
        # the website stamps a new order itself
        stamp = now_text(shop.timespec)
        order = {**(request.get_json(force=True) or {}), "status": "new", "created_at": stamp,
                 "updated_at": stamp}  # fmt: skip
        with sandbox.lock:
            shop.orders[str(order["id"])] = order
        delivered = None if request.args.get("deliver") == "0" else post_event(shop_id, shop, "order.created", order)
        return jsonify(order=order, delivered=delivered)

    @bp.post("/customers/<int:customer_id>")
    def edit_customer(shop_id: str, customer_id: int) -> Response:
        shop = sandbox.shops[shop_id]
        with sandbox.lock:
            current = shop.customers.get(str(customer_id))
            kind = "customer.updated" if current else "customer.created"
            customer = {"id": customer_id, "kv_id": None, **(current or {}), **(request.get_json(force=True) or {}),
                        "updated_at": now_text(shop.timespec)}  # fmt: skip
            shop.customers[str(customer_id)] = customer
        delivered = None if request.args.get("deliver") == "0" else post_event(shop_id, shop, kind, customer)
        return jsonify(customer=customer, delivered=delivered)

    @bp.post("/orders/<order_id>/touch")
    def touch_order(shop_id: str, order_id: str) -> Any:
        """Edit an order without an event (a change Abaha never told of), stamped now or `updated_at`."""
        shop = sandbox.shops[shop_id]
        return _touch(sandbox, shop, shop.orders, order_id)

    @bp.post("/customers/<customer_id>/touch")
    def touch_customer(shop_id: str, customer_id: str) -> Any:
        shop = sandbox.shops[shop_id]
        return _touch(sandbox, shop, shop.customers, customer_id)

    return bp


def _touch(sandbox: AbahaSandbox, shop: AbahaShop, items: dict[str, dict[str, Any]], item_id: str) -> Any:
    change = request.get_json(force=True, silent=True)
    change = change if isinstance(change, dict) else {}
    with sandbox.lock:
        item = items.get(item_id)
        if item is None:
            return error(404, "not_found", f"no such item {item_id}")
        item.update({k: v for k, v in change.items() if k != "id"})
        item["updated_at"] = change.get("updated_at") or now_text(shop.timespec)
        return jsonify(dict(item))
