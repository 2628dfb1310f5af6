"""The simulated KiotViet's webhooks: one per type per retailer, registered through the public
API or by hand (another integration's), and control routes to sign, send and resend deliveries."""

from __future__ import annotations

import secrets
from dataclasses import asdict
from typing import Any

from flask import Blueprint, Response, abort, jsonify, request

from sandbox.kiotviet_data import KiotVietSandbox, Retailer
from sandbox.kiotviet_delivery import SIGNATURE_STYLES, describe, record, redeliver, send
from sandbox.kiotviet_http import authenticated, not_found, page, refuse

TYPES = ("customer.update", "customer.delete", "product.update", "product.delete", "stock.update", "order.update",
         "invoice.update", "pricebook.update", "pricebook.delete", "pricebookdetail.update", "pricebookdetail.delete",
         "category.update", "category.delete", "branch.update", "branch.delete")  # fmt: skip
TAKEN = "Type đã tồn tại"  # KiotViet's words when a type already has a hook (kiotviet-api.md §3)
PUBLIC_FIELDS = ("id", "type", "url", "isActive", "description")


def create_blueprints(sandbox: KiotVietSandbox) -> list[Blueprint]:
    return [_api_routes(sandbox), _control_routes(sandbox)]


def public(hook: dict[str, Any]) -> dict[str, Any]:
    """A hook as KiotViet lists it: never its secret."""
    return {k: hook.get(k) for k in PUBLIC_FIELDS}


def add_hook(sandbox: KiotVietSandbox, retailer: Retailer, hook: dict[str, Any], replace: bool = False) -> str | None:
    """Store `hook` (type, url, secret...) under a new id; why not, when KiotViet would refuse."""
    if hook.get("type") not in TYPES:
        return f"Type {hook.get('type')} không hợp lệ"
    with sandbox.lock:
        holders = [i for i, h in retailer.webhooks.items() if h["type"] == hook["type"]]
        if holders and not replace:
            return TAKEN
        for webhook_id in holders:
            del retailer.webhooks[webhook_id]
        hook["id"] = sandbox.new_id()
        retailer.webhooks[hook["id"]] = hook
    return None


def _api_routes(sandbox: KiotVietSandbox) -> Blueprint:
    bp = Blueprint("kv_webhooks", __name__, url_prefix="/kiotviet")

    @bp.get("/webhooks")
    def webhooks() -> Response:
        retailer = authenticated(sandbox)
        with sandbox.lock:
            return page(sorted((public(h) for h in retailer.webhooks.values()), key=lambda h: h["id"]))

    @bp.post("/webhooks")
    def register() -> Response | tuple[Response, int]:
        retailer = authenticated(sandbox)
        given = _lower_keys(request.get_json(silent=True) or {})
        hook = _lower_keys(given.get("webhook") or {}) if isinstance(given, dict) else {}
        if not hook.get("type") or not hook.get("url") or len(str(hook.get("secret") or "")) < 8:
            return refuse("Webhook không hợp lệ")
        stored = {"type": hook["type"], "url": hook["url"], "isActive": bool(hook.get("isactive", True)),
                  "description": hook.get("description"), "secret": hook["secret"]}  # fmt: skip
        problem = add_hook(sandbox, retailer, stored)
        return refuse(problem) if problem else jsonify(public(stored))

    @bp.delete("/webhooks/<int:webhook_id>")
    def unregister(webhook_id: int) -> Response:
        retailer = authenticated(sandbox)
        with sandbox.lock:
            retailer.webhooks.pop(webhook_id, None) or not_found(f"Webhook {webhook_id} không tồn tại")
        return jsonify(message="Xóa dữ liệu thành công")

    return bp


def _lower_keys(value: Any) -> Any:
    # KiotViet reads request keys case-insensitively
    return {str(k).lower(): v for k, v in value.items()} if isinstance(value, dict) else value


def _control_routes(sandbox: KiotVietSandbox) -> Blueprint:  # noqa: C901 - one small closure per route
    bp = Blueprint("kv_webhooks_control", __name__, url_prefix="/_sandbox/kiotviet/<retailer>")

    def shop(retailer: str) -> Retailer:
        return sandbox.retailers.get(retailer) or abort(404)

    def body() -> dict[str, Any]:
        given = request.get_json(force=True, silent=True)
        return given if isinstance(given, dict) else {}

    @bp.get("/webhooks")
    def webhooks(retailer: str) -> Response:
        """Registered webhooks with their secrets: a sandbox-only view for tests."""
        with sandbox.lock:
            return jsonify(list(shop(retailer).webhooks.values()))

    @bp.post("/webhooks")
    def add_foreign(retailer: str) -> Response | tuple[Response, int]:
        """Another integration's hook (MyKiotViet, a website plugin); `replace` takes the type over."""
        found, change = shop(retailer), body()
        hook = {"type": change.get("type"), "url": change.get("url"), "isActive": bool(change.get("isActive", True)),
                "description": change.get("description"),
                "secret": change.get("secret") or secrets.token_urlsafe(18)}  # fmt: skip
        if not hook["url"]:
            return refuse("Webhook không hợp lệ")
        problem = add_hook(sandbox, found, hook, replace=bool(change.get("replace")))
        return refuse(problem) if problem else jsonify(hook)

    @bp.patch("/webhooks/<int:webhook_id>")
    def change_hook(retailer: str, webhook_id: int) -> Response | tuple[Response, int]:
        found, change = shop(retailer), body()
        with sandbox.lock:
            hook = found.webhooks.get(webhook_id) or abort(404)
            kind = change.get("type", hook["type"])
            if kind not in TYPES:
                return refuse(f"Type {kind} không hợp lệ")
            if any(h["type"] == kind for i, h in found.webhooks.items() if i != webhook_id):
                return refuse(TAKEN)
            hook.update({k: v for k, v in change.items() if k in ("type", "url", "isActive", "description", "secret")})
            return jsonify(hook)

    @bp.delete("/webhooks/<int:webhook_id>")
    def remove_hook(retailer: str, webhook_id: int) -> Response:
        found = shop(retailer)
        with sandbox.lock:
            return jsonify(found.webhooks.pop(webhook_id, None) or abort(404))

    @bp.post("/signature")
    def signature_style(retailer: str) -> Response | tuple[Response, int]:
        found, style = shop(retailer), body().get("style")
        if style not in SIGNATURE_STYLES:
            return jsonify(error=f"style must be one of {', '.join(SIGNATURE_STYLES)}"), 400
        with sandbox.lock:
            found.signature_style = style
        return jsonify(style=style)

    @bp.get("/deliveries")
    def deliveries(retailer: str) -> Response:
        found, kind = shop(retailer), request.args.get("type")
        with sandbox.lock:
            kept = [describe(d) for d in found.deliveries.values() if kind is None or d.kind == kind]
        return jsonify(deliveries=kept)

    @bp.post("/deliveries")
    def deliver_raw(retailer: str) -> Response | tuple[Response, int]:
        """The request's body, exactly, to every active hook of `?type=`, signed as the retailer signs."""
        found, kind = shop(retailer), request.args.get("type")
        if kind is None or kind not in TYPES:
            return jsonify(error=f"?type= must be one of {', '.join(TYPES)}"), 400
        delivery = record(found, kind, request.get_data())
        delivered = send(found, delivery) if request.args.get("deliver", "1") != "0" else []
        return jsonify(type=kind, delivered=delivered, delivery=describe(delivery))

    @bp.post("/deliveries/<delivery_id>/redeliver")
    def resend(retailer: str, delivery_id: str) -> Response:
        found = shop(retailer)
        delivery = found.deliveries.get(delivery_id) or abort(404)
        delivered = redeliver(found, delivery)
        return jsonify(type=delivery.kind, delivered=delivered, delivery=describe(delivery))

    @bp.get("/calls")
    def calls(retailer: str) -> Response:
        """What the public API received for this retailer: `?method=GET&path_contains=/products`."""
        found = shop(retailer)
        method, part = request.args.get("method"), request.args.get("path_contains", "")
        with sandbox.lock:
            listed = [asdict(c) for c in found.calls
                      if (method is None or c.method == method.upper()) and part in c.path]  # fmt: skip
            return jsonify(calls=listed, total=len(listed), get_requests=found.get_requests)

    @bp.delete("/calls")
    def forget_calls(retailer: str) -> Response:
        found = shop(retailer)
        with sandbox.lock:
            found.calls.clear()
        return jsonify(ok=True)

    return bp
