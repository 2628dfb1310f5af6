"""The simulated KiotViet's catalogue as its public API answers it: categories, products with
their variants and units, stock, price books (kiotviet-api.md §3)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from flask import Blueprint, Response, jsonify, request

from sandbox.kiotviet_data import KiotVietSandbox, Retailer
from sandbox.kiotviet_http import (
    authenticated,
    listing,
    modified_since,
    not_found,
    ordered,
    page,
    parse_time,
    since_arg,
    values,
)

Item = dict[str, Any]


def base_of(retailer: Retailer, product: Item) -> Item | None:
    """The base-unit row of a unit row; None for a base row (or one whose base is gone)."""
    base_id = product.get("masterUnitId")
    return None if base_id in (None, product["id"]) else retailer.products.get(base_id)


def inventories_of(retailer: Retailer, product: Item) -> list[Item]:
    """A row's stock per branch: a unit row reports its base row's numbers, in base units."""
    source = base_of(retailer, product) or product
    return [dict(i) for i in source.get("inventories") or []]


def unit_index(retailer: Retailer) -> dict[int, list[Item]]:
    """Each base row's other unit rows."""
    units: dict[int, list[Item]] = defaultdict(list)
    for product in retailer.products.values():
        base_id = product.get("masterUnitId")
        if base_id not in (None, product["id"]):
            units[base_id].append(product)
    return units


def price_books_of(retailer: Retailer, product_id: int) -> list[Item]:
    return [{"priceBookId": b["id"], "priceBookName": b.get("name"), "price": b["prices"][product_id]}
            for b in sorted(retailer.pricebooks.values(), key=lambda b: b["id"])
            if product_id in b.get("prices", {})]  # fmt: skip


def rest_product(retailer: Retailer, product: Item, *, pricebooks: bool = False,
                 units: dict[int, list[Item]] | None = None) -> Item:  # fmt: skip
    """A product row as `GET /products` answers it (and, PascalCased, as its webhook carries it)."""
    row = {**product, "inventories": inventories_of(retailer, product)}
    row.pop("stockModifiedDate", None)
    others = (units if units is not None else unit_index(retailer)).get(product["id"])
    if others:
        row["units"] = [{"id": u["id"], "code": u.get("code"), "name": u.get("name"), "unit": u.get("unit"),
                         "conversionValue": u.get("conversionValue"), "basePrice": u.get("basePrice")}
                        for u in sorted(others, key=lambda u: u["id"])]  # fmt: skip
    if pricebooks:
        row["priceBooks"] = price_books_of(retailer, product["id"])
    return row


def stock_modified(retailer: Retailer, product: Item) -> str:
    """When the row's stock last changed: its own stamp, else its last edit; a unit row's
    changes with its base row's."""
    own = str(product.get("stockModifiedDate") or product["modifiedDate"])
    base = base_of(retailer, product)
    return max(own, stock_modified(retailer, base), key=parse_time) if base else own


def share_stock(retailer: Retailer, base_id: int, stamp: str) -> list[int]:
    """After the stock of `base_id` changed: its unit rows show the same numbers, stamped `stamp`."""
    base = retailer.products[base_id]
    base["stockModifiedDate"] = stamp
    changed = []
    for unit in unit_index(retailer).get(base_id, []):
        unit.update(inventories=[dict(i) for i in base["inventories"]], stockModifiedDate=stamp)
        changed.append(unit["id"])
    return changed


def category_rows(retailer: Retailer) -> list[Item]:
    parents = {c.get("parentId") for c in retailer.categories.values()}
    return [{**c, "hasChild": c["categoryId"] in parents}
            for c in sorted(retailer.categories.values(), key=lambda c: c["categoryId"])]  # fmt: skip


def category_tree(rows: list[Item]) -> list[Item]:
    """`hierachicalData=true`: the roots, each with its `children` (KiotViet allows 3 levels)."""
    nodes = {r["categoryId"]: {**r, "children": []} for r in rows}
    roots: list[Item] = []
    for node in nodes.values():
        parent = nodes.get(node.get("parentId"))
        (parent["children"] if parent else roots).append(node)
    return roots


def api_routes(sandbox: KiotVietSandbox) -> Blueprint:
    bp = Blueprint("kv_catalog", __name__, url_prefix="/kiotviet")

    def shop() -> Retailer:
        return authenticated(sandbox)

    def wants(name: str) -> bool:
        return request.args.get(name, "").lower() == "true"

    @bp.get("/categories")
    def categories() -> Response:
        retailer = shop()
        with sandbox.lock:
            rows = category_rows(retailer)
        if wants("hierachicalData"):  # [sic], KiotViet's spelling; the tree ignores lastModifiedFrom
            return page(category_tree(rows))
        return listing(retailer, rows, "categories", "removedIds", id_key="categoryId")

    @bp.get("/categories/<int:category_id>")
    def category(category_id: int) -> Response:
        with sandbox.lock:
            found = next((c for c in category_rows(shop()) if c["categoryId"] == category_id), None)
        return jsonify(found or not_found(f"Nhóm hàng {category_id} không tồn tại"))

    @bp.get("/products")
    def products() -> Response:
        retailer = shop()
        active = request.args.get("isActive", "").lower()
        with sandbox.lock:
            rows = sorted(retailer.products.values(), key=lambda p: p["id"])
            if active in ("true", "false"):
                rows = [p for p in rows if bool(p.get("isActive", True)) == (active == "true")]
            units = unit_index(retailer)
            return listing(retailer, rows, "products", "removeId",
                           view=lambda p: rest_product(retailer, p, pricebooks=wants("includePricebook"),
                                                       units=units))  # fmt: skip

    @bp.get("/products/<int:product_id>")
    def product(product_id: int) -> Response:
        retailer = shop()
        with sandbox.lock:
            found = retailer.products.get(product_id) or not_found(f"Hàng hóa {product_id} không tồn tại")
            return jsonify(rest_product(retailer, found, pricebooks=wants("includePricebook")))

    @bp.get("/products/code/<code>")
    def product_by_code(code: str) -> Response:
        retailer = shop()
        with sandbox.lock:
            found = next((p for p in retailer.products.values() if p.get("code") == code), None)
            found = found or not_found(f"Hàng hóa {code} không tồn tại")
            return jsonify(rest_product(retailer, found, pricebooks=wants("includePricebook")))

    @bp.get("/productOnHands")
    def stock() -> Response:
        retailer = shop()
        branches = {int(b) for b in values("branchIds") if b.isdigit()}
        with sandbox.lock:
            heads = [{"id": p["id"], "code": p.get("code"), "modifiedDate": stock_modified(retailer, p)}
                     for p in sorted(retailer.products.values(), key=lambda p: p["id"])]  # fmt: skip
            rows = ordered(modified_since(heads, since_arg()))

            def view(head: Item) -> Item:
                inventories = inventories_of(retailer, retailer.products[head["id"]])
                return {**head, "inventories": [
                    {"branchId": i["branchId"], "onhand": i["onHand"], "reserved": i["reserved"]}
                    for i in inventories if not branches or i["branchId"] in branches]}  # fmt: skip

            return page(rows, view)

    @bp.get("/pricebooks")
    def pricebooks() -> Response:
        retailer = shop()
        with sandbox.lock:
            books = [{k: v for k, v in b.items() if k != "prices"}
                     for b in sorted(retailer.pricebooks.values(), key=lambda b: b["id"])]  # fmt: skip
        return listing(retailer, books, "pricebooks", "removeIds")

    @bp.get("/pricebooks/<int:book_id>")
    def pricebook_details(book_id: int) -> Response:
        retailer = shop()
        with sandbox.lock:
            book = retailer.pricebooks.get(book_id) or not_found(f"Bảng giá {book_id} không tồn tại")
            details = [{"productId": product, "productCode": retailer.products.get(product, {}).get("code"),
                        "price": price} for product, price in sorted(book["prices"].items())]  # fmt: skip
        return page(details)

    return bp
