"""Applying KiotViet's catalog changes to Abaha: products, stock, categories, price books.

Every write runs under the entity's lock and its version guard, so a replay does nothing new
and an event older than what was applied is skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

from adapters.errors import AbahaNotFound, PermanentError
from schemas.events import Event
from schemas.kiotviet import KvCategory, KvPrice, KvPriceBook, KvProduct, KvStock, PriceBookSchema
from workers.context import ShopContext

log = structlog.get_logger(__name__)
APPLIED, STALE, IGNORED = "applied", "stale", "ignored"


def write_if_newer(ctx: ShopContext, kind: str, entity_id: str, version: int, write: Callable[[], Any], *,
                   same_is_stale: bool) -> bool:  # fmt: skip
    """The version guard of one entity: under its lock, run `write` unless something newer (or,
    with `same_is_stale`, this very version) was applied, then record `version`."""
    shop = ctx.connection.shop_id
    with ctx.state.entity_lock(shop, kind, entity_id):
        if ctx.state.is_stale(shop, kind, entity_id, version, same_is_stale=same_is_stale):
            return False
        write()
        ctx.state.record_version(shop, kind, entity_id, version)
    return True


def guarded(ctx: ShopContext, event: Event, kind: str, entity_id: str, write: Callable[[], None]) -> str:
    """Apply an event's write unless this version or a newer one was applied to the entity."""
    if write_if_newer(ctx, kind, entity_id, event.version_micros, write, same_is_stale=True):
        return APPLIED
    log.info("event.stale", kind=kind, entity_id=entity_id, version=event.version)
    return STALE


def apply_product_update(event: Event, ctx: ShopContext) -> str:
    """Upsert the product on Abaha, hidden when inactive or not for sale."""
    product = complete_product(KvProduct.from_json(event.data), ctx)
    return guarded(ctx, event, "product", str(product.id), lambda: put_product(product, event, ctx))


def apply_product_delete(event: Event, ctx: ShopContext) -> str:
    """Hide, never delete: order history on Abaha keeps pointing at the product."""
    product_id = int(event.data["id"])
    return guarded(ctx, event, "product", str(product_id), lambda: hide_product(product_id, ctx))


def hide_product(product_id: int, ctx: ShopContext) -> None:
    try:
        ctx.abaha.patch_product(product_id, {"active": False})
    except AbahaNotFound:
        log.info("product.delete_unknown_on_abaha", product_id=product_id)


def apply_stock_update(event: Event, ctx: ShopContext) -> str:
    """Sellable stock of the connection's branch; other branches are ignored."""
    stock = KvStock(**event.data)
    if stock.branch_id != ctx.connection.branch_id:
        return IGNORED

    def write() -> None:
        value = sellable(stock.on_hand, stock.reserved)
        try:
            ctx.abaha.patch_product(stock.product_id, {"stock": value})
        except AbahaNotFound:
            # Abaha has not seen this product yet: send all of it
            ctx.abaha.put_product(
                stock.product_id, product_body(ctx.kiotviet.product(stock.product_id), value, event.version)
            )
        ctx.state.record_stock_value(ctx.connection.shop_id, stock.product_id, value)

    return guarded(ctx, event, "stock", f"{stock.product_id}:{stock.branch_id}", write)


def apply_category_update(event: Event, ctx: ShopContext) -> str:
    category = KvCategory(**event.data)
    if category.name is None:
        category = KvCategory(**{**event.data, "name": _fetch_category_name(category.id, ctx)})
    body = {"name": category.name, "parent_kv_id": category.parent_id or None}
    return guarded(ctx, event, "category", str(category.id), lambda: ctx.abaha.put_category(category.id, body))


def apply_category_delete(event: Event, ctx: ShopContext) -> str:
    category_id = int(event.data["id"])
    return guarded(ctx, event, "category", str(category_id), lambda: ctx.abaha.delete_category(category_id))


def apply_pricebook_update(event: Event, ctx: ShopContext) -> str:
    """The price list's name and whether it is active; its validity dates are not synced."""
    book = KvPriceBook(**event.data)
    if book.name is None:
        book = fetch_price_book(book.id, ctx)
    body = {"name": book.name, "active": book.is_active is not False}
    return guarded(ctx, event, "pricebook", str(book.id), lambda: ctx.abaha.put_price_list(book.id, body))


def apply_pricebook_delete(event: Event, ctx: ShopContext) -> str:
    book_id = int(event.data["id"])
    return guarded(ctx, event, "pricebook", str(book_id), lambda: ctx.abaha.delete_price_list(book_id))


def apply_price_update(event: Event, ctx: ShopContext) -> str:
    price = KvPrice(**event.data)
    entity = f"{price.price_book_id}:{price.product_id}"
    return guarded(ctx, event, "price", entity, lambda: put_price(price, ctx))


def apply_price_delete(event: Event, ctx: ShopContext) -> str:
    book, product = int(event.data["price_book_id"]), int(event.data["product_id"])
    return guarded(ctx, event, "price", f"{book}:{product}", lambda: ctx.abaha.delete_price(book, product))


def put_price(price: KvPrice, ctx: ShopContext) -> None:
    prices = [{"product_kv_id": price.product_id, "price": price.price}]
    try:
        ctx.abaha.put_prices(price.price_book_id, prices)
    except AbahaNotFound:
        # the price list itself has not reached Abaha yet
        book = fetch_price_book(price.price_book_id, ctx)
        ctx.abaha.put_price_list(book.id, {"name": book.name, "active": book.is_active is not False})
        ctx.abaha.put_prices(price.price_book_id, prices)


def fetch_price_book(book_id: int, ctx: ShopContext) -> KvPriceBook:
    """A price book's name and flag, from the list (`/pricebooks/{id}` answers its prices)."""
    for page in ctx.kiotviet.pages("/pricebooks"):
        for item in page.get("data") or []:
            if int(item.get("id", 0)) == book_id:
                found: KvPriceBook = PriceBookSchema().load(item)
                return found
    raise PermanentError(f"price book {book_id} is not in KiotViet's list of price books")


def complete_product(product: KvProduct, ctx: ShopContext) -> KvProduct:
    """Fetch the product when the webhook left out what the write needs."""
    needed = (product.code, product.name, product.base_price, product.allows_sale)
    if all(value is not None for value in needed):
        return product
    log.info("product.thin_payload_fetched", product_id=product.id)
    return ctx.kiotviet.product(product.id)


def put_product(product: KvProduct, event: Event, ctx: ShopContext) -> None:
    """Write the whole product, with the newest stock known for the branch."""
    shop, branch = ctx.connection.shop_id, ctx.connection.branch_id
    stock_entity = f"{product.id}:{branch}"
    inventory = next((i for i in product.inventories or () if i.branch_id == branch), None)
    with ctx.state.entity_lock(shop, "stock", stock_entity):
        if inventory is not None and not ctx.state.is_stale(shop, "stock", stock_entity, event.version_micros):
            stock: int | None = sellable(inventory.on_hand, inventory.reserved)
        else:
            stock = ctx.state.stock_value(shop, product.id)
        ctx.abaha.put_product(product.id, product_body(product, stock, event.version))
        if inventory is not None and stock is not None:
            ctx.state.record_stock_value(shop, product.id, stock)
            ctx.state.record_version(
                shop,
                "stock",
                stock_entity,
                max(event.version_micros, ctx.state.applied_version(shop, "stock", stock_entity) or 0),
            )


def product_body(product: KvProduct, stock: int | None, fallback_version: str) -> dict[str, Any]:
    """Abaha's product body (`abaha-api.md` §1)."""
    return {
        "sku": product.code,
        "barcode": product.barcode,
        "name": product.name,
        "full_name": product.full_name or product.name,
        "category_kv_id": product.category_id,
        "description": product.description or "",
        "unit": product.unit,
        "price": product.base_price,
        "weight_grams": round(product.weight) if product.weight is not None else None,
        "images": list(product.images or ()),
        "attributes": [{"name": a.name, "value": a.value} for a in product.attributes or ()],
        "active": product.is_active is not False and product.allows_sale is not False,
        "stock": stock,
        "source_modified_at": product.modified_date or fallback_version,
    }


def sellable(on_hand: float, reserved: float) -> int:
    """What a customer can still buy at the branch; never below zero on the website."""
    return max(0, int(on_hand - reserved))


def _fetch_category_name(category_id: int, ctx: ShopContext) -> str | None:
    body = ctx.kiotviet.request("GET", f"/categories/{category_id}")
    data = body.get("data", body) if isinstance(body, dict) else {}
    return data.get("categoryName") or data.get("name")


CATALOG_HANDLERS: dict[str, Callable[[Event, ShopContext], str]] = {
    "product.update": apply_product_update,
    "product.delete": apply_product_delete,
    "stock.update": apply_stock_update,
    "category.update": apply_category_update,
    "category.delete": apply_category_delete,
    "pricebook.update": apply_pricebook_update,
    "pricebook.delete": apply_pricebook_delete,
    "pricebookdetail.update": apply_price_update,
    "pricebookdetail.delete": apply_price_delete,
}
