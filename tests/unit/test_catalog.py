from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import fakeredis
import pytest

from adapters.connections import Connection
from adapters.errors import AbahaNotFound
from adapters.links import LinkStore
from adapters.state import SyncState
from schemas.events import Event
from schemas.kiotviet import ProductSchema
from schemas.kiotviet_webhook import normalize_delivery
from tests.helpers import sample
from workers.context import ShopContext
from workers.jobs import apply

SHOP = "shop-42"


class FakeAbaha:
    """Records writes; answers 404 for what it has not seen when asked to."""

    def __init__(self) -> None:
        self.products: dict[int, dict[str, Any]] = {}
        self.calls: list[tuple[str, Any, Any]] = []
        self.categories: dict[int, dict[str, Any]] = {}
        self.prices: dict[tuple[int, int], int] = {}
        self.price_lists: dict[int, dict[str, Any]] = {}

    def put_product(self, kv_id: int, body: dict[str, Any]) -> None:
        self.calls.append(("put_product", kv_id, body))
        self.products[kv_id] = dict(body)

    def patch_product(self, kv_id: int, body: dict[str, Any]) -> None:
        self.calls.append(("patch_product", kv_id, body))
        if kv_id not in self.products:
            raise AbahaNotFound("no such product", 404)
        self.products[kv_id].update(body)

    def put_category(self, kv_id: int, body: dict[str, Any]) -> None:
        self.calls.append(("put_category", kv_id, body))
        self.categories[kv_id] = body

    def delete_category(self, kv_id: int) -> None:
        self.calls.append(("delete_category", kv_id, None))
        self.categories.pop(kv_id, None)

    def put_price_list(self, kv_id: int, body: dict[str, Any]) -> None:
        self.calls.append(("put_price_list", kv_id, body))
        self.price_lists[kv_id] = body

    def put_prices(self, kv_id: int, prices: list[dict[str, Any]]) -> None:
        self.calls.append(("put_prices", kv_id, prices))
        if kv_id not in self.price_lists:
            raise AbahaNotFound("no such price list", 404)
        for row in prices:
            self.prices[(kv_id, row["product_kv_id"])] = row["price"]


class FakeKiotViet:
    def __init__(self, products: dict[int, dict[str, Any]] | None = None) -> None:
        self.products = products or {}
        self.fetched: list[str] = []

    def product(self, product_id: int) -> Any:
        self.fetched.append(f"/products/{product_id}")
        return ProductSchema().load(self.products[product_id])

    def pages(self, path: str, params: Any = None) -> Any:
        self.fetched.append(path)
        yield {"total": 2, "data": [{"id": 200, "name": "Giá lẻ"}, {"id": 201, "name": "Giá sỉ", "isActive": True}]}


@pytest.fixture
def abaha() -> FakeAbaha:
    return FakeAbaha()


@pytest.fixture
def kiotviet() -> FakeKiotViet:
    return FakeKiotViet()


@pytest.fixture
def ctx(abaha: FakeAbaha, kiotviet: FakeKiotViet) -> ShopContext:
    connection = Connection(shop_id=SHOP, retailer="demo", client_id="cid", branch_id=11)
    redis = fakeredis.FakeRedis()
    return ShopContext(connection, kiotviet, abaha, SyncState(redis), LinkStore(redis))  # type: ignore[arg-type]


def events_of(name: str, edit: Any = None, received: str = "2026-11-30T08:00:00+00:00") -> list[Event]:
    body = sample(f"kiotviet/{name}")
    if edit:
        edit(body["Notifications"][0]["Data"][0])
    return normalize_delivery(json.dumps(body).encode(), body, SHOP, received).events


def product_event(**changes: Any) -> Event:
    return events_of("product.update", lambda item: item.update(changes))[0]


def test_product_update_writes_the_product_with_stock_of_the_branch(ctx: ShopContext, abaha: FakeAbaha) -> None:
    assert apply(product_event(), ctx) == "applied"
    body = abaha.products[3001]
    assert (body["sku"], body["price"], body["active"], body["category_kv_id"]) == ("SP000123", 150000, True, 101)
    assert body["stock"] == 13  # branch 11: onHand 15 − reserved 2; branch 12 is not ours
    assert body["attributes"] == [{"name": "MÀU SẮC", "value": "Trắng"}, {"name": "KÍCH THƯỚC", "value": "M"}]


@pytest.mark.parametrize("changes", [{"isActive": False}, {"AllowsSale": False}])
def test_inactive_or_not_for_sale_products_are_hidden(ctx: ShopContext, abaha: FakeAbaha, changes: dict) -> None:
    apply(product_event(**changes), ctx)
    assert abaha.products[3001]["active"] is False


def test_deleted_product_is_hidden_not_deleted(ctx: ShopContext, abaha: FakeAbaha) -> None:
    apply(product_event(Id=3002), ctx)
    (event,) = events_of("product.delete", received="2026-12-01T00:00:00+00:00")
    assert apply(event, ctx) == "applied"
    assert abaha.products[3002]["active"] is False
    assert abaha.calls[-1] == ("patch_product", 3002, {"active": False})


def test_older_event_after_newer_is_skipped_and_counted(ctx: ShopContext, abaha: FakeAbaha) -> None:
    newer = product_event(BasePrice=200000, ModifiedDate="2026-11-30T11:00:00.0000000+07:00")
    older = product_event(BasePrice=100000, ModifiedDate="2026-11-30T10:00:00.0000000+07:00")
    assert apply(newer, ctx) == "applied"
    assert apply(older, ctx) == "stale"
    assert abaha.products[3001]["price"] == 200000
    assert len(abaha.calls) == 1


def test_applying_the_same_event_twice_writes_the_same_state(ctx: ShopContext, abaha: FakeAbaha) -> None:
    event = product_event()
    apply(event, ctx)
    first = dict(abaha.products[3001])
    apply(event, ctx)
    assert abaha.products[3001] == first


def test_stock_of_another_branch_is_ignored(ctx: ShopContext, abaha: FakeAbaha) -> None:
    (event,) = events_of("stock.update", lambda item: item.update(BranchId=12))
    assert apply(event, ctx) == "ignored"
    assert abaha.calls == []


def test_stock_update_patches_sellable_stock(ctx: ShopContext, abaha: FakeAbaha) -> None:
    apply(product_event(), ctx)
    (event,) = events_of("stock.update", received="2026-12-01T00:00:00+00:00")
    assert apply(event, ctx) == "applied"
    assert abaha.calls[-1] == ("patch_product", 3001, {"stock": 8})  # 9 − 1


def test_older_product_payload_does_not_undo_newer_stock(ctx: ShopContext, abaha: FakeAbaha) -> None:
    (stock,) = events_of(
        "stock.update", lambda i: i.update(OnHand=40, Reserved=0), received="2026-12-01T00:00:00+00:00"
    )
    apply(product_event(), ctx)
    apply(stock, ctx)
    later_edit = product_event(Name="Áo mới", ModifiedDate="2026-11-30T23:00:00.0000000+07:00")
    apply(later_edit, ctx)
    assert abaha.products[3001]["name"] == "Áo mới"
    assert abaha.products[3001]["stock"] == 40


def test_stock_for_a_product_abaha_lacks_sends_the_whole_product(
    ctx: ShopContext, abaha: FakeAbaha, kiotviet: FakeKiotViet
) -> None:
    kiotviet.products[3001] = {"id": 3001, "code": "SP000123", "name": "Áo", "basePrice": 1, "allowsSale": True}
    (event,) = events_of("stock.update")
    apply(event, ctx)
    assert abaha.products[3001]["sku"] == "SP000123"
    assert abaha.products[3001]["stock"] == 8


def test_thin_product_payload_is_completed_by_fetching(
    ctx: ShopContext, abaha: FakeAbaha, kiotviet: FakeKiotViet
) -> None:
    kiotviet.products[3001] = {"id": 3001, "code": "SP000123", "name": "Áo thun", "basePrice": 99000,
                               "allowsSale": True, "isActive": True, "inventories": [
                                   {"branchId": 11, "onHand": 5, "reserved": 1}]}  # fmt: skip
    thin = {"Id": "t", "Notifications": [{"Action": "product.update", "Data": [
        {"Id": 3001, "ModifiedDate": "2026-11-30T10:00:00"}]}]}  # fmt: skip
    (event,) = normalize_delivery(b"", thin, SHOP, "2026-11-30T08:00:00+00:00").events
    apply(event, ctx)
    assert kiotviet.fetched == ["/products/3001"]
    assert (abaha.products[3001]["name"], abaha.products[3001]["price"], abaha.products[3001]["stock"]) == (
        "Áo thun", 99000, 4)  # fmt: skip


def test_category_update_and_delete(ctx: ShopContext, abaha: FakeAbaha) -> None:
    (update,) = events_of("category.update")
    apply(update, ctx)
    assert abaha.categories[101] == {"name": "Áo", "parent_kv_id": None}
    delete = replace(events_of("category.delete")[0], entity_id="101", data={"id": 101},
                     version="2026-12-01T00:00:00+00:00")  # fmt: skip
    apply(delete, ctx)
    assert 101 not in abaha.categories


def test_price_of_an_unknown_price_list_creates_the_list_first(
    ctx: ShopContext, abaha: FakeAbaha, kiotviet: FakeKiotViet
) -> None:
    (event,) = events_of("pricebookdetail.update")
    assert apply(event, ctx) == "applied"
    assert abaha.price_lists[201] == {"name": "Giá sỉ", "active": True}
    assert abaha.prices[(201, 3001)] == 125000


def test_a_type_without_a_handler_is_parked_not_dropped(ctx: ShopContext, abaha: FakeAbaha) -> None:
    (event,) = events_of("branch.update")
    unknown = replace(event, type="branch.merge")
    assert apply(unknown, ctx) == "not_applied"
    assert abaha.calls == []
    assert [p["id"] for p in ctx.state.parked(SHOP)] == [unknown.id]


@pytest.mark.parametrize("name", ["branch.update", "branch.delete", "customer.delete"])
def test_branches_and_customer_deletes_are_ignored_by_design(ctx: ShopContext, abaha: FakeAbaha, name: str) -> None:
    (event,) = events_of(name)[:1]
    assert apply(event, ctx) == "ignored"
    assert abaha.calls == []
