"""In-memory KiotViet and Abaha for unit tests, typed against the ports the workers use
(`workers/ports.py`). Rows go in as KiotViet's own REST bodies and come out through the real
schemas, so parsing is exercised too. Every call is recorded; `fail_next` makes a call fail."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from marshmallow import Schema

from adapters import clock
from adapters.abaha import ItemResult, ListPage
from adapters.errors import AbahaNotFound, AbahaRejected, KiotVietNotFound, KiotVietRejected
from adapters.kiotviet import PAGE_SIZE, Page, load_items
from schemas import kiotviet as kv
from schemas import kiotviet_sales as sales
from schemas.abaha import AbahaCustomer, CustomerSchema, OrderSchema
from schemas.customers import local_phone

VIETNAM = timezone(timedelta(hours=7))
_ticks = itertools.count(1)


def stamp(minutes: float = 0) -> str:
    """A KiotViet time now (Vietnam time, on the service's clock so tests can move it), later at
    every call, so versions move forward."""
    moment = clock.now().astimezone(VIETNAM) + timedelta(minutes=minutes, microseconds=next(_ticks))
    return moment.isoformat()


@dataclass
class Recorder:
    calls: list[str] = field(default_factory=list)
    failures: dict[str, list[BaseException]] = field(default_factory=dict)

    def call(self, name: str, detail: object = "") -> None:
        self.calls.append(f"{name} {detail}".strip())
        pending = self.failures.get(name)
        if pending:
            raise pending.pop(0)

    def fail_next(self, name: str, error: BaseException, times: int = 1) -> None:
        self.failures.setdefault(name, []).extend([error] * times)

    def count(self, name: str) -> int:
        return sum(1 for c in self.calls if c.split(" ", 1)[0] == name)


def _page(schema: Schema, rows: list[dict[str, Any]], offset: int, extra: dict[str, Any] | None = None) -> Page[Any]:
    chunk = rows[offset : offset + PAGE_SIZE]
    items, problems = load_items(schema, chunk, extra)
    return Page(items, len(chunk), len(rows), (), problems)


def _since(rows: list[dict[str, Any]], since: str | None, key: str = "modifiedDate") -> list[dict[str, Any]]:
    if not since:
        return rows
    moment = kv.parse_kiotviet_datetime(since)
    return [r for r in rows if r.get(key) and kv.parse_kiotviet_datetime(r[key]) >= moment]


class FakeKiotViet(Recorder):
    """A shop in KiotViet: products with stock per branch, categories, price books, customers,
    orders, webhooks and settings."""

    def __init__(self) -> None:
        super().__init__()
        self.products: dict[int, dict[str, Any]] = {}
        self.categories: dict[int, dict[str, Any]] = {}
        self.books: dict[int, dict[str, Any]] = {}
        self.prices: dict[int, dict[int, int]] = {}
        self.customers: dict[int, dict[str, Any]] = {}
        self.groups: list[dict[str, Any]] = []
        self.orders: dict[int, dict[str, Any]] = {}
        self.hooks: dict[int, dict[str, Any]] = {}
        self.removed: dict[str, list[tuple[int, str]]] = {"products": [], "categories": []}
        self.allow_order_when_out_of_stock = True
        self.refuse_orders: str | None = None
        self._ids = itertools.count(10_000)

    # -- what a test sets up

    def add_product(self, product_id: int, **fields: Any) -> dict[str, Any]:
        row = {"id": product_id, "code": f"SP{product_id}", "name": f"Sản phẩm {product_id}", "basePrice": 100_000,
               "allowsSale": True, "isActive": True, "unit": "cái", "categoryId": None, "images": [],
               "attributes": [], "inventories": [], "modifiedDate": stamp(), **fields}  # fmt: skip
        row.setdefault("stockModifiedDate", row["modifiedDate"])
        self.products[product_id] = row
        return row

    def set_stock(self, product_id: int, branch_id: int, on_hand: float, reserved: float = 0) -> None:
        row = self.products[product_id]
        others = [i for i in row["inventories"] if i["branchId"] != branch_id]
        row["inventories"] = [*others, {"branchId": branch_id, "onHand": on_hand, "reserved": reserved}]
        row["stockModifiedDate"] = stamp()

    def edit_product(self, product_id: int, **fields: Any) -> dict[str, Any]:
        self.products[product_id].update(fields, modifiedDate=stamp())
        return self.products[product_id]

    # -- the port

    def settings(self) -> sales.KvSettings:
        self.call("settings")
        return sales.KvSettings(self.allow_order_when_out_of_stock)

    def webhooks(self) -> list[sales.KvWebhook]:
        self.call("webhooks")
        return [sales.WebhookSchema().load(h) for h in self.hooks.values()]

    def register_webhook(self, kind: str, url: str, secret: str) -> int | str:
        self.call("register_webhook", kind)
        hook_id = next(self._ids)
        self.hooks[hook_id] = {"id": hook_id, "type": kind, "url": url, "isActive": True, "secret": secret}
        return hook_id

    def delete_webhook(self, webhook_id: int | str) -> None:
        self.call("delete_webhook", webhook_id)
        self.hooks.pop(int(webhook_id), None)

    def product(self, product_id: int) -> kv.KvProduct | None:
        self.call("product", product_id)
        row = self.products.get(product_id)
        if row is None:
            return None
        books = [{"priceBookId": b, "price": p[product_id]} for b, p in self.prices.items() if product_id in p]
        product: kv.KvProduct = kv.ProductSchema().load({**row, "priceBooks": books})
        return replace(product, links_given=True)

    def product_by_code(self, code: str) -> kv.KvProduct:
        self.call("product_by_code", code)
        for row in self.products.values():
            if row.get("code") == code:
                found: kv.KvProduct = kv.ProductSchema().load(row)
                return replace(found, links_given=True)
        raise KiotVietNotFound(f"KiotViet has no /products/code/{code}", 404)

    def products_page(self, offset: int, *, since: str | None = None, by_modified: bool = False,
                      removed: bool = False) -> Page[kv.KvProduct]:  # fmt: skip
        self.call("products_page", offset)
        rows = _since(sorted(self.products.values(), key=_order(by_modified)), since)
        page = _page(kv.ProductSchema(), rows, offset)
        return replace(page, items=tuple(replace(p, links_given=True) for p in page.items),
                       removed_ids=self._removed("products", since) if removed else ())  # fmt: skip

    def stock_page(self, branch_id: int, offset: int, *, since: str | None = None) -> Page[kv.KvStockRow]:
        self.call("stock_page", offset)
        rows = [{"id": r["id"], "modifiedDate": r["stockModifiedDate"],
                 "inventories": [{"branchId": i["branchId"], "onhand": i["onHand"], "reserved": i["reserved"]}
                                 for i in r["inventories"]]} for r in self.products.values()]  # fmt: skip
        rows = _since(sorted(rows, key=lambda r: (kv.parse_kiotviet_datetime(r["modifiedDate"]), r["id"])), since)
        return _page(kv.StockRowSchema(), rows, offset)

    def category(self, category_id: int) -> kv.KvCategory | None:
        self.call("category", category_id)
        row = self.categories.get(category_id)
        return None if row is None else kv.CategorySchema().load(row)  # type: ignore[no-any-return]

    def categories_page(self, offset: int, *, since: str | None = None, removed: bool = False,
                        by_modified: bool = False) -> Page[kv.KvCategory]:  # fmt: skip
        self.call("categories_page", offset)
        page = _page(kv.CategorySchema(), _since(sorted(self.categories.values(), key=_order(by_modified)), since),
                     offset)  # fmt: skip
        return replace(page, removed_ids=self._removed("categories", since) if removed else ())

    def _removed(self, listing: str, since: str | None) -> tuple[int, ...]:
        moment = kv.parse_kiotviet_datetime(since) if since else None
        return tuple(i for i, at in self.removed[listing] if moment is None or kv.parse_kiotviet_datetime(at) >= moment)

    def delete_product(self, product_id: int) -> None:
        self.products.pop(product_id, None)
        self.removed["products"].append((product_id, stamp()))

    def delete_category(self, category_id: int) -> None:
        self.categories.pop(category_id, None)
        self.removed["categories"].append((category_id, stamp()))

    def price_books(self) -> list[kv.KvPriceBook]:
        self.call("price_books")
        return [kv.PriceBookSchema().load(b) for b in self.books.values()]

    def price_books_page(self, offset: int) -> Page[kv.KvPriceBook]:
        self.call("price_books_page", offset)
        return _page(kv.PriceBookSchema(), list(self.books.values()), offset)

    def prices_page(self, book_id: int, offset: int) -> Page[kv.KvPrice]:
        self.call("prices_page", f"{book_id}@{offset}")
        rows = [{"productId": p, "price": v} for p, v in sorted(self.prices.get(book_id, {}).items())]
        return _page(kv.PriceSchema(), rows, offset, {"pricebookid": book_id})

    def customer(self, customer_id: int) -> sales.KvCustomer | None:
        self.call("customer", customer_id)
        row = self.customers.get(customer_id)
        return None if row is None else sales.CustomerSchema().load(row)  # type: ignore[no-any-return]

    def customers_by_phone(self, phone: str) -> list[sales.KvCustomer]:
        self.call("customers_by_phone", phone)
        rows = [c for c in self.customers.values() if local_phone(c.get("contactNumber")) == local_phone(phone)]
        return [sales.CustomerSchema().load(c) for c in rows]

    def customers_by_code(self, code: str) -> list[sales.KvCustomer]:
        self.call("customers_by_code", code)
        return [sales.CustomerSchema().load(c) for c in self.customers.values() if c.get("code") == code]

    def customers_page(self, offset: int, *, since: str | None = None, by_modified: bool = False,
                       with_groups: bool = False) -> Page[sales.KvCustomer]:  # fmt: skip
        self.call("customers_page", offset)
        rows = _since(sorted(self.customers.values(), key=_order(by_modified)), since)
        return _page(sales.CustomerSchema(), rows, offset)

    def create_customer(self, body: dict[str, Any]) -> sales.KvCreated:
        self.call("create_customer", body.get("contactNumber"))
        customer_id = next(self._ids)
        self.customers[customer_id] = {"code": f"KH{customer_id}", **body, "id": customer_id, "modifiedDate": stamp()}
        return sales.KvCreated(customer_id, self.customers[customer_id]["code"])

    def update_customer(self, customer_id: int, body: dict[str, Any]) -> None:
        self.call("update_customer", customer_id)
        self.customers[customer_id].update(body, modifiedDate=stamp())

    def customer_groups(self) -> list[sales.KvCustomerGroup]:
        self.call("customer_groups")
        return [sales.CustomerGroupSchema().load(g) for g in self.groups]

    def customer_groups_page(self, offset: int) -> Page[sales.KvCustomerGroup]:
        self.call("customer_groups_page", offset)
        return _page(sales.CustomerGroupSchema(), self.groups, offset)

    def order(self, order_id: int) -> sales.KvOrder | None:
        self.call("order", order_id)
        row = self.orders.get(order_id)
        return None if row is None else sales.OrderSchema().load(row)  # type: ignore[no-any-return]

    def orders_page(self, branch_id: int, offset: int, *, since: str | None = None,
                    by_modified: bool = True) -> Page[sales.KvOrder]:  # fmt: skip
        self.call("orders_page", offset)
        rows = _since(sorted(self.orders.values(), key=_order(by_modified)), since)
        return _page(sales.OrderSchema(), rows, offset)

    def create_order(self, body: dict[str, Any]) -> sales.KvCreated:
        self.call("create_order", body.get("description"))
        if self.refuse_orders:
            raise KiotVietRejected(f"KiotViet refused POST /orders: {self.refuse_orders}", 400, self.refuse_orders)
        order_id = next(self._ids)
        lines = body.get("orderDetails") or []
        fees = sum(f.get("price", 0) for f in body.get("surchages") or [])
        total = sum(d["quantity"] * (d["price"] - d.get("discount", 0)) for d in lines) - body.get("discount", 0) + fees
        self.orders[order_id] = {"id": order_id, "code": f"DH{order_id}", "status": 1, "total": total,
                                 "description": body.get("description"), "branchId": body.get("branchId"),
                                 "orderDetails": lines, "modifiedDate": stamp()}  # fmt: skip
        return sales.KvCreated(order_id, f"DH{order_id}")


def _order(by_modified: bool) -> Callable[[dict[str, Any]], Any]:
    if by_modified:
        return lambda r: (kv.parse_kiotviet_datetime(r["modifiedDate"]), r.get("id", r.get("categoryId")))
    return lambda r: r.get("id", r.get("categoryId"))


class FakeAbaha(Recorder):
    """A shop's Abaha: what was written, keyed by KiotViet ids as the contract says."""

    def __init__(self) -> None:
        super().__init__()
        self.products: dict[int, dict[str, Any]] = {}
        self.categories: dict[int, dict[str, Any]] = {}
        self.price_lists: dict[int, dict[str, Any]] = {}
        self.prices: dict[tuple[int, int], int] = {}
        self.groups: dict[int, dict[str, Any]] = {}
        self.customers: dict[int, dict[str, Any]] = {}
        self.orders: dict[int, dict[str, Any]] = {}
        self.order_links: dict[int, tuple[int, str | None]] = {}
        self.statuses: dict[int, str] = {}
        self.refused_products: set[int] = set()
        self.product_writes: list[int] = []  # kv ids of every product put, in order
        self._ids = itertools.count(500)

    def put_category(self, kv_id: int, body: dict[str, Any]) -> None:
        self.call("put_category", kv_id)
        self.categories[kv_id] = dict(body)

    def delete_category(self, kv_id: int) -> None:
        self.call("delete_category", kv_id)
        self.categories.pop(kv_id, None)

    def put_products(self, items: Sequence[dict[str, Any]]) -> list[ItemResult]:
        self.call("put_products", len(items))
        results = []
        for item in items:
            body = {k: v for k, v in copy.deepcopy(item).items() if k != "kv_id"}
            if int(item["kv_id"]) in self.refused_products or not body.get("sku"):
                results.append(ItemResult(int(item["kv_id"]), "error", "sku is refused"))
                continue
            self.products[int(item["kv_id"])] = body
            self.product_writes.append(int(item["kv_id"]))
            results.append(ItemResult(int(item["kv_id"]), "ok"))
        return results

    def patch_products(self, items: Sequence[dict[str, Any]]) -> list[ItemResult]:
        self.call("patch_products", len(items))
        results = []
        for item in items:
            kv_id = int(item["kv_id"])
            if kv_id not in self.products:
                results.append(ItemResult(kv_id, "not_found"))
                continue
            self.products[kv_id].update({k: v for k, v in item.items() if k != "kv_id"})
            results.append(ItemResult(kv_id, "ok"))
        return results

    def put_price_list(self, kv_id: int, body: dict[str, Any]) -> None:
        self.call("put_price_list", kv_id)
        self.price_lists[kv_id] = dict(body)

    def delete_price_list(self, kv_id: int) -> None:
        self.call("delete_price_list", kv_id)
        self.price_lists.pop(kv_id, None)

    def put_prices(self, kv_id: int, prices: Sequence[dict[str, Any]]) -> None:
        self.call("put_prices", kv_id)
        if kv_id not in self.price_lists:
            raise AbahaNotFound("no such price list", 404)
        for row in prices:
            self.prices[(kv_id, int(row["product_kv_id"]))] = int(row["price"])

    def delete_price(self, kv_id: int, product_kv_id: int) -> None:
        self.call("delete_price", f"{kv_id}:{product_kv_id}")
        self.prices.pop((kv_id, product_kv_id), None)

    def link_order(self, abaha_order_id: int, kv_order_id: int, kv_order_code: str | None) -> None:
        self.call("link_order", abaha_order_id)
        self.order_links[abaha_order_id] = (kv_order_id, kv_order_code)

    def set_order_status(self, abaha_order_id: int, body: dict[str, Any]) -> None:
        self.call("set_order_status", abaha_order_id)
        current = self.statuses.get(abaha_order_id)
        if current is not None and current != body["status"]:
            raise AbahaRejected("Abaha refused: status_final", 409, "status_final")
        self.statuses[abaha_order_id] = body["status"]

    def orders_page(self, since: str, page: int = 1) -> ListPage:
        self.call("orders_page", page)
        return self._listed(list(self.orders.values()), OrderSchema(), since, page)

    def customers_page(self, since: str, page: int = 1) -> ListPage:
        self.call("customers_page", page)
        return self._listed(list(self.customers.values()), CustomerSchema(), since, page)

    def _listed(self, rows: list[dict[str, Any]], schema: Schema, since: str, page: int) -> ListPage:
        """Abaha's lists: changed since a time (inclusive), by `updated_at` then id, 100 a page."""
        moment = datetime.fromisoformat(since)
        rows = sorted((r for r in rows if r.get("updated_at") and datetime.fromisoformat(r["updated_at"]) >= moment),
                      key=lambda r: (datetime.fromisoformat(r["updated_at"]), r["id"]))  # fmt: skip
        chunk = rows[(page - 1) * 100 : page * 100]
        return ListPage(tuple(schema.load(r) for r in chunk), page + 1 if page * 100 < len(rows) else None)

    def customers_by_phone(self, phone: str) -> list[AbahaCustomer]:
        self.call("customers_by_phone", phone)
        found = [c for c in self.customers.values() if local_phone(c.get("phone")) == local_phone(phone)]
        return [CustomerSchema().load(c) for c in found]

    def put_customer_group(self, kv_id: int, body: dict[str, Any]) -> None:
        self.call("put_customer_group", kv_id)
        self.groups[kv_id] = dict(body)

    def put_customer(self, kv_id: int, body: dict[str, Any]) -> int:
        self.call("put_customer", kv_id)
        linked = body.get("abaha_id") or next((i for i, c in self.customers.items() if c.get("kv_id") == kv_id), None)
        customer_id = int(linked) if linked else next(self._ids)
        current = self.customers.setdefault(customer_id, {"id": customer_id})
        before = dict(current)
        current.update({k: v for k, v in body.items() if k not in ("abaha_id", "group_kv_ids", "code",
                                                                   "source_modified_at")}, kv_id=kv_id)  # fmt: skip
        if current != before:  # Abaha stamps a change, to the second
            current["updated_at"] = (clock.now().astimezone(VIETNAM)).isoformat(timespec="seconds")
        return customer_id
