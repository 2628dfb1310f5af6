"""The simulated KiotViet's data: shops, their catalogue, and the webhooks it sends."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import requests

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


def grow_catalogue(retailer: Retailer, *, products: int = 0, categories: int = 0, pricebooks: int = 0,
                   prices_per_book: int = 0, priced_books: int | None = None, customers: int = 0,
                   customer_groups: int = 0, first_id: int = 100_000) -> None:  # fmt: skip
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
        priced = priced_books is None or n < priced_books
        prices = {pid: 9_000 + i % 300 * 1_000 for i, pid in enumerate(product_ids[:prices_per_book])} if priced else {}
        retailer.pricebooks[bid] = {"id": bid, "name": f"Bảng giá {n}", "isActive": True, "isGlobal": True,
                                    "prices": prices, "modifiedDate": stamp}  # fmt: skip
    for n in range(customer_groups):
        retailer.customer_groups.append({"id": first_id + n, "name": f"Nhóm {n}", "discount": n % 10})
    for n in range(customers):
        cid = first_id + n
        retailer.customers[cid] = {"id": cid, "code": f"KH{cid}", "name": f"Khách {n}", "gender": n % 2 == 0,
                                   "contactNumber": f"09{cid:08d}", "address": f"{n} Lê Lợi", "modifiedDate": stamp,
                                   "groups": "Khách VIP" if n % 5 == 0 else ""}  # fmt: skip
