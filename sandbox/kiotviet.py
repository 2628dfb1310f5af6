"""A simulated KiotViet: token endpoint, the public API the service uses, and webhooks it sends.

Faithful to `kiotviet-api.md` where that document is sure, and picks one answer where it is
not (webhooks are signed hex HMAC-SHA256 keyed by the secret's text, `/surcharges` answers
404 so the client's fallback from `/surchages` is exercised only when asked).
Control routes under `/_sandbox/kiotviet/` change data and deliver the matching webhook.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import requests
from flask import Blueprint, Response, abort, jsonify, request

VIETNAM = timezone(timedelta(hours=7))


def now_text() -> str:
    return datetime.now(VIETNAM).strftime("%Y-%m-%dT%H:%M:%S.%f0+07:00")


@dataclass
class OrderHold:
    """Lets a test act (kill a worker) after an order is created but before KiotViet answers."""

    created: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


@dataclass
class Retailer:
    """One KiotViet shop's data."""

    name: str
    retailer_id: int
    client_id: str
    client_secret: str
    branches: dict[int, dict[str, Any]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=lambda: {"AllowOrderWhenOutStock": True})
    surcharges: list[dict[str, Any]] = field(default_factory=list)
    surcharges_enabled: bool = True
    products: dict[int, dict[str, Any]] = field(default_factory=dict)
    categories: dict[int, dict[str, Any]] = field(default_factory=dict)
    pricebooks: dict[int, dict[str, Any]] = field(default_factory=dict)
    webhooks: dict[int, dict[str, Any]] = field(default_factory=dict)
    # ids deleted, with when, per list: what `includeRemoveIds` answers
    removed: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    customers: dict[int, dict[str, Any]] = field(default_factory=dict)
    customer_groups: list[dict[str, Any]] = field(default_factory=list)
    ordering_enabled: bool = True
    # set by a test to hold the answer to the next POST /orders until it says so
    order_hold: OrderHold | None = None
    get_requests: int = 0


class KiotVietSandbox:
    """State shared by the simulated API's routes."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.retailers: dict[str, Retailer] = {}
        self.tokens: dict[str, str] = {}
        self._next_id = 1

    def new_id(self) -> int:
        with self.lock:
            self._next_id += 1
            return self._next_id

    def add_retailer(self, retailer: Retailer) -> Retailer:
        with self.lock:
            self.retailers[retailer.name] = retailer
        return retailer

    def by_client(self, client_id: str, client_secret: str) -> Retailer | None:
        for retailer in self.retailers.values():
            ok = hmac.compare_digest(retailer.client_secret.encode(), client_secret.encode())
            if retailer.client_id == client_id and ok:
                return retailer
        return None


def demo_retailer(name: str = "demo", retailer_id: int = 500123456) -> Retailer:
    """A small shop: two branches, a surcharge, a category, two products, a price book."""
    shop = Retailer(name=name, retailer_id=retailer_id, client_id=f"{name}-client", client_secret=f"{name}-secret")
    shop.branches = {11: {"id": 11, "branchName": "Chi nhánh trung tâm", "branchCode": "CN1"},
                     12: {"id": 12, "branchName": "Chi nhánh Quận 3", "branchCode": "CN2"}}  # fmt: skip
    shop.surcharges = [{"id": 1, "surchargeCode": "THK000001", "surchargeName": "Phí giao hàng", "value": 0}]
    shop.categories = {101: {"categoryId": 101, "categoryName": "Áo", "parentId": None, "modifiedDate": now_text()}}
    for product_id, code, name_, price in ((3001, "SP000123", "Áo thun cổ tròn", 150000),
                                            (3002, "SP000124", "Áo sơ mi", 250000)):  # fmt: skip
        shop.products[product_id] = {
            "id": product_id, "code": code, "barCode": f"893{product_id}", "name": name_, "fullName": name_,
            "categoryId": 101, "basePrice": price, "unit": "cái", "weight": 200, "description": "",
            "isActive": True, "allowsSale": True, "hasVariants": False, "attributes": [],
            "images": [f"https://cdn.example.vn/{code.lower()}.jpg"], "modifiedDate": now_text(),
            "inventories": [{"branchId": 11, "onHand": 15, "reserved": 2},
                            {"branchId": 12, "onHand": 4, "reserved": 0}],
        }  # fmt: skip
    shop.customer_groups = [{"id": 1, "name": "Khách VIP", "discount": 5}]
    shop.pricebooks = {201: {"id": 201, "name": "Giá sỉ", "isActive": True, "isGlobal": True,
                             "prices": {3001: 120000}, "modifiedDate": now_text()}}  # fmt: skip
    return shop


def pascal(value: Any) -> Any:
    """camelCase keys → PascalCase, as webhook bodies carry them (isActive stays lower)."""
    if isinstance(value, dict):
        return {(k if k == "isActive" else k[:1].upper() + k[1:]): pascal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [pascal(v) for v in value]
    return value


def sign(body: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def create_blueprints(sandbox: KiotVietSandbox) -> list[Blueprint]:
    """The token endpoint, the public API, and the control routes."""
    from sandbox import kiotviet_sales

    return [_token_routes(sandbox), _api_routes(sandbox), _control_routes(sandbox),
            kiotviet_sales.api_routes(sandbox), kiotviet_sales.control_routes(sandbox)]  # fmt: skip


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


def deliver(retailer: Retailer, kind: str, data: list[Any]) -> list[dict[str, Any]]:
    """POST a signed delivery of `kind` to every webhook of that type; report each answer."""
    envelope = {"Id": str(uuid.uuid4()), "Attempt": 1,
                "Notifications": [{"Action": f"{kind}.{retailer.retailer_id}", "Data": data}]}  # fmt: skip
    body = json.dumps(envelope, ensure_ascii=False).encode()
    results = []
    for hook in [h for h in retailer.webhooks.values() if h["type"] == kind and h["isActive"]]:
        headers = {"Content-Type": "application/json", "X-Hub-Signature": sign(body, hook["secret"])}
        try:
            status = requests.post(hook["url"], data=body, headers=headers, timeout=5).status_code
        except requests.RequestException as exc:
            status = f"error: {type(exc).__name__}"  # type: ignore[assignment]
        results.append({"url": hook["url"], "status": status})
    return results


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


def grow_catalogue(retailer: Retailer, *, products: int = 0, categories: int = 0, pricebooks: int = 0,
                   prices_per_book: int = 0, customers: int = 0, first_id: int = 100_000) -> None:  # fmt: skip
    """Add generated entities, like a shop that has used KiotViet for years (every 7th product
    inactive, every 11th not for sale)."""
    stamp = now_text()
    for n in range(categories):
        cid = first_id + n
        retailer.categories[cid] = {"categoryId": cid, "categoryName": f"Danh mục {n}", "parentId": None,
                                    "modifiedDate": stamp}  # fmt: skip
    category_ids: list[int | None] = list(retailer.categories) or [None]
    for n in range(products):
        pid = first_id + n
        retailer.products[pid] = {
            "id": pid, "code": f"SP{pid}", "barCode": f"893{pid}", "name": f"Sản phẩm {n}",
            "fullName": f"Sản phẩm {n} - Trắng - M", "categoryId": category_ids[n % len(category_ids)],
            "basePrice": 10_000 + n % 500 * 1_000, "unit": "cái", "weight": 100 + n % 900,
            "description": "Hàng chính hãng " * 3, "isActive": n % 7 != 0, "allowsSale": n % 11 != 0,
            "hasVariants": False, "images": [f"https://cdn.example.vn/{pid}.jpg"], "modifiedDate": stamp,
            "attributes": [{"attributeName": "MÀU SẮC", "attributeValue": "Trắng"}],
            "inventories": [{"branchId": 11, "onHand": n % 40, "reserved": n % 3},
                            {"branchId": 12, "onHand": 5, "reserved": 0}],
        }  # fmt: skip
    product_ids = sorted(retailer.products)
    for n in range(pricebooks):
        bid = first_id + n
        prices = {pid: 9_000 + i % 300 * 1_000 for i, pid in enumerate(product_ids[:prices_per_book])}
        retailer.pricebooks[bid] = {"id": bid, "name": f"Bảng giá {n}", "isActive": True, "isGlobal": True,
                                    "prices": prices, "modifiedDate": stamp}  # fmt: skip
    for n in range(customers):
        cid = first_id + n
        retailer.customers[cid] = {"id": cid, "code": f"KH{cid}", "name": f"Khách {n}", "gender": n % 2 == 0,
                                   "contactNumber": f"09{cid:08d}", "address": f"{n} Lê Lợi", "modifiedDate": stamp,
                                   "groups": "Khách VIP" if n % 5 == 0 else ""}  # fmt: skip
