"""A simulated Abaha API (`abaha-api.md` §1), with fault injection and a view of its state."""

from __future__ import annotations

import hmac
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Response, jsonify, request

from sandbox import faults
from sandbox.faults import Fault as Fault  # re-exported: tests build faults from here

WRITES = ("PUT", "PATCH", "DELETE", "POST")
BATCH_MAX = 100
TIMESPECS = ("seconds", "milliseconds", "microseconds")


@dataclass
class AbahaShop:
    token: str
    categories: dict[str, dict[str, Any]] = field(default_factory=dict)
    products: dict[str, dict[str, Any]] = field(default_factory=dict)
    price_lists: dict[str, dict[str, Any]] = field(default_factory=dict)
    prices: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))
    customer_groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    # every write, "PUT /products/3001"; an item of a batch call also as "PUT /products/3001 (batch)"
    writes: list[str] = field(default_factory=list)
    # where this shop's events go, as configured in Abaha's webhook settings
    webhook_url: str | None = None
    webhook_token: str | None = None
    sign_events: bool = True
    # Real Abaha stamps whole seconds ("seconds"). Finer by default for now: with whole seconds the
    # service takes an Abaha change made in the same second as a KiotViet one for the older one
    # (tests/integration/test_customers.py::test_a_phone_known_in_kiotviet_is_matched_not_duplicated)
    timespec: str = "seconds"  # real Abaha stamps whole seconds
    # SKUs Abaha refuses (say, held for review), with the reason it gives, item by item
    refused_skus: dict[str, str] = field(default_factory=dict)


class AbahaSandbox:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.shops: dict[str, AbahaShop] = {}
        self.faults: list[Fault] = []

    def add_shop(self, shop_id: str, token: str) -> AbahaShop:
        with self.lock:
            return self.shops.setdefault(shop_id, AbahaShop(token=token))

    def take_fault(self, path: str, method: str = "GET") -> Fault | None:
        return faults.take(self.lock, self.faults, method, path)


def faultable(path: str) -> bool:
    """Abaha's API; never the `/_sandbox/` control routes."""
    return path.startswith("/abaha/v1/")


def error_body(status: int) -> dict[str, Any]:
    return {"error": {"code": "injected", "message": "sandbox fault"}}


def error(status: int, code: str, message: str) -> tuple[Response, int]:
    return jsonify(error={"code": code, "message": message}), status


def check_request(sandbox: AbahaSandbox) -> Any:
    """The shop's bearer token (injected faults came before, see sandbox.faults); writes are logged."""
    shop_id = (request.view_args or {}).get("shop_id", "")
    shop = sandbox.shops.get(shop_id)
    given = request.headers.get("Authorization", "").removeprefix("Bearer ")
    if shop is None or not hmac.compare_digest(given.encode(), shop.token.encode()):
        return error(401, "unauthorized", "invalid token")
    if request.method in WRITES:
        with sandbox.lock:
            shop.writes.append(f"{request.method} {request.path.split(shop_id, 1)[1]}")
    return None


def create_blueprints(sandbox: AbahaSandbox) -> list[Blueprint]:
    return [_api_routes(sandbox), _control_routes(sandbox),
            faults.control_routes("abaha", "/_sandbox/abaha", sandbox.lock, sandbox.faults)]  # fmt: skip


def batch_items() -> list[Any] | tuple[Response, int]:
    """The `items` of a batch call, or the 422 when they are not a list of at most BATCH_MAX."""
    body = request.get_json(force=True, silent=True)
    items = body.get("items") if isinstance(body, dict) else None
    if not isinstance(items, list):
        return error(422, "invalid", "items must be a list")
    return items if len(items) <= BATCH_MAX else error(422, "too_many", f"at most {BATCH_MAX} items")


def product_problem(body: Any) -> str | None:
    """Why `PUT /products/{kv_id}` would refuse this body."""
    if not isinstance(body, dict) or not body.get("sku") or not body.get("name"):
        return "sku and name are required"
    return None


def batch_id(item: Any) -> int | None:
    kv_id = item.get("kv_id") if isinstance(item, dict) else None
    return kv_id if isinstance(kv_id, int) and not isinstance(kv_id, bool) else None


def put_one(shop: AbahaShop, item: Any) -> dict[str, Any]:
    """One item of `PUT /products:batch`, checked as `PUT /products/{kv_id}` checks it."""
    kv_id = batch_id(item)
    if kv_id is None:
        return {"kv_id": item.get("kv_id") if isinstance(item, dict) else None, "status": "error",
                "error": "kv_id must be an integer"}  # fmt: skip
    body = {k: v for k, v in item.items() if k != "kv_id"}
    problem = product_problem(body) or shop.refused_skus.get(str(body.get("sku")))
    if problem:
        return {"kv_id": kv_id, "status": "error", "error": problem}
    shop.products[str(kv_id)] = body
    shop.writes.append(f"PUT /products/{kv_id} (batch)")
    return {"kv_id": kv_id, "status": "ok"}


def patch_one(shop: AbahaShop, item: Any) -> dict[str, Any]:
    """One item of `PATCH /products:batch`: a subset of the product body, for a known product."""
    kv_id = batch_id(item)
    if kv_id is None:
        return {"kv_id": item.get("kv_id") if isinstance(item, dict) else None, "status": "error",
                "error": "kv_id must be an integer"}  # fmt: skip
    product = shop.products.get(str(kv_id))
    if product is None:
        return {"kv_id": kv_id, "status": "not_found"}
    change = {k: v for k, v in item.items() if k != "kv_id"}
    problem = product_problem({**product, **change})
    if problem:
        return {"kv_id": kv_id, "status": "error", "error": problem}
    product.update(change)
    shop.writes.append(f"PATCH /products/{kv_id} (batch)")
    return {"kv_id": kv_id, "status": "ok"}


def _api_routes(sandbox: AbahaSandbox) -> Blueprint:  # noqa: C901 - one small closure per route
    bp = Blueprint("abaha_api", __name__, url_prefix="/abaha/v1/shops/<shop_id>")

    bp.before_request(lambda: check_request(sandbox))

    def shop_of(shop_id: str) -> AbahaShop:
        return sandbox.shops[shop_id]

    @bp.put("/categories/<kv_id>")
    def put_category(shop_id: str, kv_id: str) -> tuple[Response, int]:
        body = request.get_json(force=True)
        if not isinstance(body, dict) or not body.get("name"):
            return error(422, "invalid", "name is required")
        shop = shop_of(shop_id)
        created = kv_id not in shop.categories
        shop.categories[kv_id] = body
        return jsonify(id=kv_id), 201 if created else 200

    @bp.delete("/categories/<kv_id>")
    def delete_category(shop_id: str, kv_id: str) -> Any:
        if shop_of(shop_id).categories.pop(kv_id, None) is None:
            return error(404, "not_found", "no such category")
        return "", 204

    @bp.put("/products/<kv_id>")
    def put_product(shop_id: str, kv_id: str) -> Any:
        body = request.get_json(force=True)
        shop = shop_of(shop_id)
        problem = product_problem(body) or shop.refused_skus.get(str(body.get("sku")))
        if problem:
            return error(422, "invalid", problem)
        with sandbox.lock:
            created = kv_id not in shop.products
            shop.products[kv_id] = body
        return jsonify(id=kv_id), 201 if created else 200

    @bp.patch("/products/<kv_id>")
    def patch_product(shop_id: str, kv_id: str) -> Any:
        with sandbox.lock:
            product = shop_of(shop_id).products.get(kv_id)
            if product is None:
                return error(404, "not_found", "no such product")
            product.update(request.get_json(force=True) or {})
        return jsonify(id=kv_id), 200

    @bp.put("/products:batch")
    def put_products(shop_id: str) -> Any:
        items = batch_items()
        if not isinstance(items, list):
            return items
        shop = shop_of(shop_id)
        with sandbox.lock:
            return jsonify(results=[put_one(shop, item) for item in items]), 200

    @bp.patch("/products:batch")
    def patch_products(shop_id: str) -> Any:
        items = batch_items()
        if not isinstance(items, list):
            return items
        shop = shop_of(shop_id)
        with sandbox.lock:
            return jsonify(results=[patch_one(shop, item) for item in items]), 200

    @bp.put("/price-lists/<kv_id>")
    def put_price_list(shop_id: str, kv_id: str) -> Any:
        shop_of(shop_id).price_lists[kv_id] = request.get_json(force=True)
        return jsonify(id=kv_id), 200

    @bp.delete("/price-lists/<kv_id>")
    def delete_price_list(shop_id: str, kv_id: str) -> Any:
        shop = shop_of(shop_id)
        shop.prices.pop(kv_id, None)
        if shop.price_lists.pop(kv_id, None) is None:
            return error(404, "not_found", "no such price list")
        return "", 204

    @bp.put("/price-lists/<kv_id>/prices")
    def put_prices(shop_id: str, kv_id: str) -> Any:
        shop = shop_of(shop_id)
        if kv_id not in shop.price_lists:
            return error(404, "not_found", "no such price list")
        for row in (request.get_json(force=True) or {}).get("prices") or []:
            shop.prices[kv_id][str(row["product_kv_id"])] = row["price"]
        return jsonify(ok=True), 200

    @bp.delete("/price-lists/<kv_id>/prices/<product_kv_id>")
    def delete_price(shop_id: str, kv_id: str, product_kv_id: str) -> Any:
        if shop_of(shop_id).prices.get(kv_id, {}).pop(product_kv_id, None) is None:
            return error(404, "not_found", "no such price")
        return "", 204

    @bp.put("/customer-groups/<kv_id>")
    def put_customer_group(shop_id: str, kv_id: str) -> Any:
        shop_of(shop_id).customer_groups[kv_id] = request.get_json(force=True)
        return jsonify(id=kv_id), 200

    return bp


def _control_routes(sandbox: AbahaSandbox) -> Blueprint:
    bp = Blueprint("abaha_control", __name__, url_prefix="/_sandbox/abaha")

    @bp.post("/shops/<shop_id>")
    def add_shop(shop_id: str) -> Any:
        """Add or change a shop: its API `token`, and optionally `timespec` ("seconds" as real Abaha)."""
        body = request.get_json(force=True) or {}
        timespec = body.get("timespec")
        if timespec is not None and timespec not in TIMESPECS:
            return error(422, "invalid", f"timespec must be one of {', '.join(TIMESPECS)}")
        with sandbox.lock:
            shop = sandbox.add_shop(shop_id, body["token"])
            shop.token = body["token"]
            shop.timespec = timespec or shop.timespec
            timespec = shop.timespec
        return jsonify(shop_id=shop_id, timespec=timespec)

    @bp.get("/shops/<shop_id>")
    def state(shop_id: str) -> Any:
        shop = sandbox.shops.get(shop_id)
        if shop is None:
            return error(404, "not_found", "no such shop")
        with sandbox.lock:
            return jsonify(categories=shop.categories, products=shop.products, price_lists=shop.price_lists,
                           prices=shop.prices, customer_groups=shop.customer_groups, orders=shop.orders,
                           customers=shop.customers, writes=shop.writes)  # fmt: skip

    return bp
