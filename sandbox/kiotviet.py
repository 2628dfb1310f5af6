"""A simulated KiotViet: token endpoint, the public API the service uses, and webhooks it sends.

Faithful to `kiotviet-api.md` where that document is sure, and picks one answer where it is
not (webhooks are signed hex HMAC-SHA256 keyed by the secret's text, `/surcharges` answers
404 so the client's fallback from `/surchages` is exercised only when asked).
Control routes under `/_sandbox/kiotviet/` change data and deliver the matching webhook.
"""

from __future__ import annotations

import json
import re
import secrets
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, abort, jsonify, request

from sandbox.kiotviet_data import VIETNAM, KiotVietSandbox, Retailer, deliver, now_text, pascal


def create_blueprints(sandbox: KiotVietSandbox) -> list[Blueprint]:
    """The token endpoint, the public API, and the control routes."""
    return [_token_routes(sandbox), _api_routes(sandbox), _control_routes(sandbox)]


def _token_routes(sandbox: KiotVietSandbox) -> Blueprint:
    bp = Blueprint("kv_token", __name__, url_prefix="/kiotviet-id")

    @bp.post("/connect/token")
    def token() -> Response | tuple[Response, int]:
        form = request.form
        if form.get("grant_type") != "client_credentials":
            return jsonify(error="unsupported_grant_type"), 400
        retailer = sandbox.by_client(form.get("client_id", ""), form.get("client_secret", ""))
        if retailer is None:
            return jsonify(error="invalid_client"), 400
        value = secrets.token_urlsafe(24)
        with sandbox.lock:
            sandbox.tokens[value] = retailer.name
        return jsonify(access_token=value, expires_in=86400, token_type="Bearer")

    return bp


def authenticated(sandbox: KiotVietSandbox) -> Retailer:
    """The retailer of the request's token and `Retailer` header, or a 401 like KiotViet's."""
    token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    name = sandbox.tokens.get(token)
    if name is None or name != request.headers.get("Retailer"):
        body = {"responseStatus": {"errorCode": "Unauthorized", "message": "Token không hợp lệ"}}
        abort(Response(json.dumps(body), 401, content_type="application/json"))
    retailer = sandbox.retailers[name]
    if request.method == "GET":
        retailer.get_requests += 1
    return retailer


def page(items: list[Any]) -> Response:
    """One page of a list, KiotViet style."""
    size = min(int(request.args.get("pageSize", 20)), 100)
    offset = int(request.args.get("currentItem", 0))
    return jsonify(total=len(items), pageSize=size, data=items[offset : offset + size])


def listing(retailer: Retailer, items: list[dict[str, Any]], kind: str, removed_key: str) -> Response:
    """A page of a list, filtered by `lastModifiedFrom`, with the removed ids when asked."""
    since = request.args.get("lastModifiedFrom")
    if since:
        items = [i for i in items if after(i["modifiedDate"], since)]
    answer = page(items).get_json()
    if request.args.get("includeRemoveIds") == "true":
        answer[removed_key] = [i for i, at in retailer.removed.get(kind, []) if not since or after(at, since)]
    return jsonify(answer)


def after(modified: str, since: str) -> bool:
    return parse_time(modified) >= parse_time(since)


def parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", text))
    return moment if moment.tzinfo else moment.replace(tzinfo=VIETNAM)


def refuse(message: str, status: int = 400) -> tuple[Response, int]:
    return jsonify(responseStatus={"errorCode": "BadRequest", "message": message}), status


def _api_routes(sandbox: KiotVietSandbox) -> Blueprint:
    bp = Blueprint("kv_api", __name__, url_prefix="/kiotviet")

    def shop() -> Retailer:
        return authenticated(sandbox)

    @bp.get("/branches")
    def branches() -> Response:
        return page(list(shop().branches.values()))

    @bp.get("/settings")
    def settings() -> Response:
        return jsonify(shop().settings)

    @bp.get("/surchages")
    def surcharges() -> Response | tuple[Response, int]:
        retailer = shop()
        if not retailer.surcharges_enabled:
            return jsonify(
                responseStatus={"errorCode": "BadRequest", "message": "Chưa bật thu khác trong thiết lập cửa hàng"}
            ), 400
        return page(retailer.surcharges)

    @bp.get("/categories")
    def categories() -> Response:
        retailer = shop()
        return listing(retailer, sorted(retailer.categories.values(), key=lambda c: c["categoryId"]),
                       "categories", "removedIds")  # fmt: skip

    @bp.get("/categories/<int:category_id>")
    def category(category_id: int) -> Response:
        found = shop().categories.get(category_id) or abort(404)
        return jsonify(found)

    @bp.get("/products")
    def products() -> Response:
        retailer = shop()
        return listing(retailer, sorted(retailer.products.values(), key=lambda p: p["id"]), "products", "removeId")

    @bp.get("/productOnHands")
    def stock() -> Response:
        retailer = shop()
        since = request.args.get("lastModifiedFrom")
        rows = [{"id": p["id"], "code": p.get("code"), "modifiedDate": p.get("stockModifiedDate", p["modifiedDate"]),
                 "inventories": [{"branchId": i["branchId"], "onhand": i["onHand"], "reserved": i["reserved"]}
                                 for i in p["inventories"]]}
                for p in sorted(retailer.products.values(), key=lambda p: p["id"])]  # fmt: skip
        return page([r for r in rows if not since or after(r["modifiedDate"], since)])

    @bp.get("/products/<int:product_id>")
    def product(product_id: int) -> Response:
        found = shop().products.get(product_id) or abort(404)
        return jsonify(found)

    @bp.get("/products/code/<code>")
    def product_by_code(code: str) -> Response:
        found = next((p for p in shop().products.values() if p.get("code") == code), None) or abort(404)
        return jsonify(found)

    @bp.get("/pricebooks")
    def pricebooks() -> Response:
        books = sorted(shop().pricebooks.values(), key=lambda b: b["id"])
        return page([{k: v for k, v in b.items() if k != "prices"} for b in books])

    @bp.get("/pricebooks/<int:book_id>")
    def pricebook_details(book_id: int) -> Response:
        retailer = shop()
        book = retailer.pricebooks.get(book_id) or abort(404)
        details = [{"productId": product, "productCode": retailer.products.get(product, {}).get("code"), "price": price}
                   for product, price in sorted(book["prices"].items())]  # fmt: skip
        return page(details)

    @bp.get("/webhooks")
    def webhooks() -> Response:
        listed = [{k: v for k, v in w.items() if k != "secret"} for w in shop().webhooks.values()]
        return jsonify(total=len(listed), data=listed)

    @bp.post("/webhooks")
    def register() -> Response | tuple[Response, int]:
        retailer = shop()
        hook = (request.get_json(silent=True) or {}).get("Webhook") or {}
        if not hook.get("Type") or not hook.get("Url") or len(hook.get("Secret") or "") < 8:
            return refuse("Webhook không hợp lệ")
        with sandbox.lock:
            webhook_id = sandbox.new_id()
            retailer.webhooks[webhook_id] = {"id": webhook_id, "type": hook["Type"], "url": hook["Url"],
                                             "isActive": True, "secret": hook["Secret"]}  # fmt: skip
        return jsonify(id=webhook_id, type=hook["Type"], url=hook["Url"], isActive=True)

    @bp.delete("/webhooks/<int:webhook_id>")
    def unregister(webhook_id: int) -> Response:
        with sandbox.lock:
            shop().webhooks.pop(webhook_id, None) or abort(404)
        return jsonify(message="Xóa dữ liệu thành công")

    return bp


def _control_routes(sandbox: KiotVietSandbox) -> Blueprint:
    bp = Blueprint("kv_control", __name__, url_prefix="/_sandbox/kiotviet/<retailer>")

    def shop(retailer: str) -> Retailer:
        return sandbox.retailers.get(retailer) or abort(404)

    def answer(retailer: Retailer, kind: str, data: list[Any]) -> Response:
        delivered = deliver(retailer, kind, data) if request.args.get("deliver", "1") != "0" else []
        return jsonify(type=kind, delivered=delivered)

    @bp.post("/products/<int:product_id>")
    def change_product(retailer: str, product_id: int) -> Response:
        found = shop(retailer)
        with sandbox.lock:
            blank = {"id": product_id, "inventories": [], "isActive": True, "allowsSale": True, "attributes": []}
            product = found.products.setdefault(product_id, blank)
            product.update(request.get_json(force=True) or {})
            product["modifiedDate"] = now_text()
            data = pascal(product)
        return answer(found, "product.update", [data])

    @bp.post("/products/<int:product_id>/stock")
    def change_stock(retailer: str, product_id: int) -> Response:
        found = shop(retailer)
        change = request.get_json(force=True) or {}
        with sandbox.lock:
            product = found.products.get(product_id) or abort(404)
            branch = int(change["branchId"])
            rows = [i for i in product["inventories"] if i["branchId"] != branch]
            row = {"branchId": branch, "onHand": change.get("onHand", 0), "reserved": change.get("reserved", 0)}
            product["inventories"] = [*rows, row]
            product["stockModifiedDate"] = now_text()
            data = {"ProductId": product_id, "ProductCode": product.get("code"), "BranchId": branch,
                    "OnHand": row["onHand"], "Reserved": row["reserved"]}  # fmt: skip
        return answer(found, "stock.update", [data])

    @bp.delete("/products/<int:product_id>")
    def delete_product(retailer: str, product_id: int) -> Response:
        found = shop(retailer)
        with sandbox.lock:
            found.products.pop(product_id, None)
            found.removed.setdefault("products", []).append((product_id, now_text()))
        return answer(found, "product.delete", [{"RemoveId": [product_id]}])

    @bp.post("/categories/<int:category_id>")
    def change_category(retailer: str, category_id: int) -> Response:
        found = shop(retailer)
        change = request.get_json(force=True) or {}
        with sandbox.lock:
            category = found.categories.setdefault(category_id, {"categoryId": category_id, "parentId": None})
            category.update({k: v for k, v in change.items() if k in ("categoryName", "parentId")})
            category["modifiedDate"] = now_text()
            data = {"Id": category_id, "Name": category.get("categoryName"), "ParentId": category.get("parentId"),
                    "ModifiedDate": category["modifiedDate"]}  # fmt: skip
        return answer(found, "category.update", [data])

    @bp.post("/pricebooks/<int:book_id>/prices/<int:product_id>")
    def change_price(retailer: str, book_id: int, product_id: int) -> Response:
        found = shop(retailer)
        price = (request.get_json(force=True) or {})["price"]
        with sandbox.lock:
            book = found.pricebooks.get(book_id) or abort(404)
            book["prices"][product_id] = price
        return answer(
            found, "pricebookdetail.update", [{"PriceBookId": book_id, "ProductId": product_id, "Price": price}]
        )

    @bp.get("/webhooks")
    def webhooks(retailer: str) -> Response:
        """Registered webhooks with their secrets: a sandbox-only view for tests."""
        return jsonify(list(shop(retailer).webhooks.values()))

    @bp.post("/settings")
    def change_settings(retailer: str) -> Response:
        found = shop(retailer)
        found.settings.update(request.get_json(force=True) or {})
        return jsonify(found.settings)

    return bp
