"""The simulated KiotViet's data: shops, their catalogue, and the webhooks it sends."""

from __future__ import annotations

import hmac
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from sandbox.faults import Fault
from sandbox.kiotviet_delivery import Delivery
from sandbox.kiotviet_delivery import deliver as deliver  # re-exported: the service's tests import them here
from sandbox.kiotviet_delivery import pascal as pascal
from sandbox.kiotviet_delivery import sign as sign

VIETNAM = timezone(timedelta(hours=7))
CALLS_KEPT = 10_000


def now_text() -> str:
    return datetime.now(VIETNAM).strftime("%Y-%m-%dT%H:%M:%S.%f0+07:00")


@dataclass
class OrderHold:
    """Lets a test act (kill a worker) after an order is created but before KiotViet answers."""

    created: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


@dataclass
class Call:
    """One request the public API received for a retailer, and the status it was answered."""

    method: str
    path: str
    query: str = ""
    status: int | None = None


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
    # how deliveries are signed: one of sandbox.kiotviet_delivery.SIGNATURE_STYLES
    signature_style: str = "kiotviet-live"  # what real KiotViet sends (kiotviet-api.md §4)
    # the latest deliveries by `Id`, oldest first, to list and resend
    deliveries: dict[str, Delivery] = field(default_factory=dict)
    calls: deque[Call] = field(default_factory=lambda: deque(maxlen=CALLS_KEPT))
    # the sandbox's lock once added to one, so routes and deliveries share it
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)


class KiotVietSandbox:
    """State shared by the simulated API's routes."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.retailers: dict[str, Retailer] = {}
        self.tokens: dict[str, str] = {}
        self.faults: list[Fault] = []
        self._next_id = 1

    def new_id(self) -> int:
        with self.lock:
            self._next_id += 1
            return self._next_id

    def add_retailer(self, retailer: Retailer) -> Retailer:
        with self.lock:
            retailer.lock = self.lock
            self.retailers[retailer.name] = retailer
        return retailer

    def by_client(self, client_id: str, client_secret: str) -> Retailer | None:
        for retailer in list(self.retailers.values()):
            ok = hmac.compare_digest(retailer.client_secret.encode(), client_secret.encode())
            if retailer.client_id == client_id and ok:
                return retailer
        return None


def product_row(product_id: int, code: str, name: str, price: int, **extra: Any) -> dict[str, Any]:
    """A product as `GET /products` answers it; `onhand` is per branch (reserved, on hand)."""
    stock = extra.pop("onhand", {11: (15, 2), 12: (4, 0)})
    return {
        "id": product_id, "code": code, "barCode": f"893{product_id}", "name": name, "fullName": name,
        "categoryId": 101, "basePrice": price, "unit": "cái", "weight": 200, "description": "",
        "isActive": True, "allowsSale": True, "hasVariants": False, "attributes": [],
        "images": [f"https://cdn.example.vn/{code.lower()}.jpg"], "modifiedDate": now_text(),
        "inventories": [{"branchId": b, "onHand": on, "reserved": held} for b, (on, held) in stock.items()],
        **extra,
    }  # fmt: skip


def variant_rows(master: dict[str, Any], attribute: str, values: list[tuple[int, str, int]]) -> list[dict[str, Any]]:
    """The variants of `master`, one per (id, value, price): own code, price and stock."""
    master["hasVariants"] = True
    return [product_row(vid, f"{master['code']}-{value}", master["name"], price, categoryId=master["categoryId"],
                        fullName=f"{master['name']} - {value}", masterProductId=master["id"],
                        attributes=[{"attributeName": attribute, "attributeValue": value}],
                        onhand={11: (5 + n * 3, n), 12: (2, 0)})
            for n, (vid, value, price) in enumerate(values)]  # fmt: skip


def unit_row(base: dict[str, Any], unit_id: int, code: str, name: str, unit: str, conversion: int,
             price: int) -> dict[str, Any]:  # fmt: skip
    """Another unit of `base` holding `conversion` of it: no images, and the base's stock in base
    units (the case kiotviet-api.md §3 warns about: a unit row's own onHand is not its stock)."""
    base.setdefault("conversionValue", 1)
    return {**product_row(unit_id, code, name, price), "unit": unit, "categoryId": base["categoryId"],
            "masterUnitId": base["id"], "conversionValue": conversion, "images": [],
            "inventories": [dict(i) for i in base["inventories"]], "weight": base["weight"] * conversion}  # fmt: skip


def demo_retailer(name: str = "demo", retailer_id: int = 500123456, *, variants_and_units: bool = False) -> Retailer:
    """A small shop: two branches, a surcharge, a category, two products, a price book; with
    `variants_and_units` also a shirt in two sizes and a drink sold by the can and by the case."""
    shop = Retailer(name=name, retailer_id=retailer_id, client_id=f"{name}-client", client_secret=f"{name}-secret")
    shop.branches = {11: {"id": 11, "branchName": "Chi nhánh trung tâm", "branchCode": "CN1"},
                     12: {"id": 12, "branchName": "Chi nhánh Quận 3", "branchCode": "CN2"}}  # fmt: skip
    shop.surcharges = [{"id": 1, "surchargeCode": "THK000001", "surchargeName": "Phí giao hàng", "value": 0}]
    shop.categories = {101: {"categoryId": 101, "categoryName": "Áo", "parentId": None, "modifiedDate": now_text()}}
    for product_id, code, name_, price in ((3001, "SP000123", "Áo thun cổ tròn", 150000),
                                            (3002, "SP000124", "Áo sơ mi", 250000)):  # fmt: skip
        shop.products[product_id] = product_row(product_id, code, name_, price)
    shop.customer_groups = [{"id": 1, "name": "Khách VIP", "discount": 5}]
    shop.pricebooks = {201: {"id": 201, "name": "Giá sỉ", "isActive": True, "isGlobal": True,
                             "prices": {3001: 120000}, "modifiedDate": now_text()}}  # fmt: skip
    if variants_and_units:
        add_demo_assortment(shop)
    return shop


def add_demo_assortment(shop: Retailer) -> None:
    """The shirt "Áo sơ mi Oxford" (3101) in sizes M (3102) and L (3103), and the can of
    "Nước ngọt lon" (3201) also sold as a case of 24 (3202)."""
    shirt = product_row(3101, "SP000200", "Áo sơ mi Oxford", 320000, onhand={11: (3, 0), 12: (1, 0)})
    for row in [shirt, *variant_rows(shirt, "KÍCH THƯỚC", [(3102, "M", 320000), (3103, "L", 340000)])]:
        shop.products[row["id"]] = row
    shop.categories[102] = {"categoryId": 102, "categoryName": "Đồ uống", "parentId": None, "modifiedDate": now_text()}
    can = product_row(3201, "SP000300", "Nước ngọt lon", 10000, categoryId=102, unit="lon", weight=330,
                      onhand={11: (240, 24), 12: (48, 0)})  # fmt: skip
    shop.products[3201] = can
    shop.products[3202] = unit_row(can, 3202, "SP000301", "Nước ngọt thùng 24 lon", "thùng", 24, 230000)
    shop.pricebooks[201]["prices"].update({3102: 300000, 3202: 220000})


def grow_catalogue(retailer: Retailer, *, products: int = 0, categories: int = 0, pricebooks: int = 0,
                   prices_per_book: int = 0, priced_books: int | None = None, customers: int = 0,
                   customer_groups: int = 0, first_id: int = 100_000, variant_groups: int = 0,
                   variants_per_group: int = 2, unit_rows: int = 0) -> None:  # fmt: skip
    """Add generated entities, like a shop that has used KiotViet for years (every 7th product
    inactive, every 11th not for sale); `variant_groups` masters with `variants_per_group`
    variants each, and `unit_rows` cases of 6, 12 or 24 of the first generated products, get
    the ids after the products'."""
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
    next_id = _grow_variants(retailer, first_id + products, variant_groups, variants_per_group, category_ids[0])
    _grow_units(retailer, next_id, [first_id + n for n in range(products)], unit_rows)
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


SIZES = ("S", "M", "L", "XL", "XXL")


def _grow_variants(retailer: Retailer, first: int, groups: int, per_group: int, category: int | None) -> int:
    """Masters with their size variants from id `first`; the next free id."""
    for g in range(groups):
        master_id = first + g * (per_group + 1)
        master = product_row(master_id, f"SPV{master_id}", f"Áo mẫu {g}", 200_000 + g % 50 * 1_000,
                             categoryId=category)  # fmt: skip
        sizes = [(master_id + 1 + v, SIZES[v % len(SIZES)] + ("" if v < len(SIZES) else str(v)),
                  master["basePrice"] + v * 10_000) for v in range(per_group)]  # fmt: skip
        for row in [master, *variant_rows(master, "KÍCH THƯỚC", sizes)]:
            retailer.products[row["id"]] = row
    return first + groups * (per_group + 1)


def _grow_units(retailer: Retailer, first: int, bases: list[int], count: int) -> None:
    if count and not bases:
        raise ValueError("unit_rows need generated products to be units of")
    for u in range(count):
        base = retailer.products[bases[u % len(bases)]]
        conversion = (6, 12, 24)[u % 3]
        uid = first + u
        retailer.products[uid] = unit_row(base, uid, f"SPU{uid}", f"{base['name']} (thùng {conversion})", "thùng",
                                          conversion, base["basePrice"] * conversion * 95 // 100)  # fmt: skip
