"""Variants (sizes, colours) and units (a case of 24 beside the can), as KiotViet holds them."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from schemas.abaha import AbahaOrder, normalize_event
from schemas.kiotviet_webhook import normalize_delivery
from tests.conftest import BRANCH, SHOP
from tests.fakes import FakeAbaha, FakeKiotViet, stamp
from tests.helpers import sample
from wiring import Services
from workers.context import ShopContext
from workers.orders import kiotviet_order_body
from workers.sync import start_full_sync

Drain = Callable[[], int]
CAN, CASE = 3201, 3202


def deliver(services: Services, body: dict[str, Any]) -> None:
    body = {**body, "Id": f"d-{stamp()}"}
    events = normalize_delivery(json.dumps(body).encode(), body, SHOP, "2026-11-30T08:00:00+00:00").events
    services.inbox.accept(SHOP, events, branch_id=BRANCH)


def product_delivery(*items: dict[str, Any]) -> dict[str, Any]:
    return {"Notifications": [{"Action": "product.update.500123456", "Data": list(items)}]}


def drink(kiotviet: FakeKiotViet, cans: int) -> None:
    """A can sold alone and by the case of 24, in KiotViet."""
    kiotviet.add_product(CAN, code="SP000300", name="Nước ngọt lon", basePrice=10000, masterUnitId=None,
                         masterProductId=None, images=["https://cdn.example.vn/lon.jpg"])  # fmt: skip
    kiotviet.set_stock(CAN, BRANCH, cans)
    rest = sample("kiotviet/rest.product.unit")
    kiotviet.add_product(CASE, **{k: v for k, v in rest.items() if k not in ("id", "modifiedDate")})


def test_a_master_and_its_variants_are_written_as_one_group(
    services: Services, work_off: Drain, abaha: FakeAbaha
) -> None:
    deliver(services, sample("kiotviet/product.update.variant"))
    work_off()
    assert abaha.products[3101]["master_kv_id"] is None
    assert {pid: abaha.products[pid]["master_kv_id"] for pid in (3102, 3103)} == {3102: 3101, 3103: 3101}
    assert abaha.products[3102]["attributes"] == [{"name": "KÍCH THƯỚC", "value": "M"}]


def test_a_variant_added_later_joins_its_group(services: Services, work_off: Drain, abaha: FakeAbaha) -> None:
    deliver(services, sample("kiotviet/product.update.variant"))
    work_off()
    variant = dict(sample("kiotviet/product.update.variant")["Notifications"][0]["Data"][1])
    variant.update(Id=3104, Code="SP000200-XL", Attributes=[{"AttributeName": "KÍCH THƯỚC", "AttributeValue": "XL"}],
                   ModifiedDate=stamp())  # fmt: skip
    deliver(services, product_delivery(variant))
    work_off()
    assert abaha.products[3104]["master_kv_id"] == 3101


def test_a_variant_moved_out_of_its_group_is_written_alone(
    services: Services, work_off: Drain, abaha: FakeAbaha
) -> None:
    deliver(services, sample("kiotviet/product.update.variant"))
    work_off()
    variant = dict(sample("kiotviet/product.update.variant")["Notifications"][0]["Data"][1])
    variant.update(MasterProductId=None, ModifiedDate=stamp())
    deliver(services, product_delivery(variant))
    work_off()
    assert abaha.products[variant["Id"]]["master_kv_id"] is None


def test_a_variant_whose_body_does_not_name_its_master_is_read(
    services: Services, work_off: Drain, abaha: FakeAbaha, kiotviet: FakeKiotViet
) -> None:
    rest = sample("kiotviet/rest.product.variant")
    kiotviet.add_product(rest["id"], **{k: v for k, v in rest.items() if k != "id"})
    thin = dict(sample("kiotviet/product.update.variant")["Notifications"][0]["Data"][1])
    thin.pop("MasterProductId", None)
    thin["Id"] = rest["id"]
    deliver(services, product_delivery(thin))
    work_off()
    assert f"product {rest['id']}" in kiotviet.calls
    assert abaha.products[rest["id"]]["master_kv_id"] == rest["masterProductId"]


def test_a_unit_row_is_written_with_its_base_its_own_price_and_the_bases_images_and_stock(
    services: Services, work_off: Drain, abaha: FakeAbaha, kiotviet: FakeKiotViet
) -> None:
    drink(kiotviet, cans=240 - 24)
    can = {"Id": CAN, "Code": "SP000300", "Name": "Nước ngọt lon", "BasePrice": 10000, "AllowsSale": True,
           "isActive": True, "MasterUnitId": None, "MasterProductId": None, "ModifiedDate": stamp(),
           "Images": ["https://cdn.example.vn/lon.jpg"]}  # fmt: skip
    deliver(services, product_delivery(can))
    work_off()
    deliver(services, sample("kiotviet/product.update.unit"))
    work_off()
    case = abaha.products[CASE]
    assert case["unit_of"] == {"kv_id": CAN, "conversion": 24}
    assert case["price"] == 230000
    assert case["images"] == ["https://cdn.example.vn/lon.jpg"]
    assert case["stock"] == 9  # 216 cans make 9 whole cases; the case row's own onHand (240) is not used


def test_a_stock_change_of_the_base_row_updates_its_unit_rows(
    services: Services, work_off: Drain, abaha: FakeAbaha, kiotviet: FakeKiotViet
) -> None:
    drink(kiotviet, cans=100)
    start_full_sync(services, SHOP, ["products"])
    work_off()
    assert (abaha.products[CAN]["stock"], abaha.products[CASE]["stock"]) == (100, 4)
    kiotviet.set_stock(CAN, BRANCH, 50)
    deliver(services, {"Notifications": [{"Action": "stock.update", "Data": [
        {"ProductId": CAN, "BranchId": BRANCH, "OnHand": 50, "Reserved": 0}]}]})  # fmt: skip
    work_off()
    assert (abaha.products[CAN]["stock"], abaha.products[CASE]["stock"]) == (50, 2)


def test_a_stock_change_reported_for_a_unit_row_is_the_base_rows(
    services: Services, work_off: Drain, abaha: FakeAbaha, kiotviet: FakeKiotViet
) -> None:
    drink(kiotviet, cans=100)
    start_full_sync(services, SHOP, ["products"])
    work_off()
    kiotviet.set_stock(CAN, BRANCH, 24)
    deliver(services, {"Notifications": [{"Action": "stock.update", "Data": [
        {"ProductId": CASE, "BranchId": BRANCH, "OnHand": 24, "Reserved": 0}]}]})  # fmt: skip
    work_off()
    assert (abaha.products[CAN]["stock"], abaha.products[CASE]["stock"]) == (24, 1)


def test_a_full_sync_of_variants_and_units_links_them(
    services: Services, work_off: Drain, abaha: FakeAbaha, kiotviet: FakeKiotViet
) -> None:
    drink(kiotviet, cans=48)
    rest = sample("kiotviet/rest.product.variant")
    kiotviet.add_product(3101, code="SP000200", name="Áo sơ mi Oxford", hasVariants=True, masterProductId=None)
    kiotviet.add_product(rest["id"], **{k: v for k, v in rest.items() if k != "id"})
    start_full_sync(services, SHOP, ["products"])
    work_off()
    assert abaha.products[rest["id"]]["master_kv_id"] == 3101
    assert abaha.products[CASE]["unit_of"] == {"kv_id": CAN, "conversion": 24}
    assert abaha.products[CASE]["stock"] == 2


def test_an_order_for_a_case_names_the_case_row(ctx: ShopContext, kiotviet: FakeKiotViet) -> None:
    drink(kiotviet, cans=48)
    body = sample("abaha/order.created")
    body["data"]["items"] = [{"sku": "SP000301", "name": "Thùng 24 lon", "quantity": 1, "unit_price": 230000}]
    body["data"].update(discount=0, shipping_fee=0, other_fees=[], total=230000)
    event = normalize_event(body, SHOP, "2026-11-30T03:15:01+00:00")
    assert event is not None
    (line,) = kiotviet_order_body(AbahaOrder.from_json(event.data), ctx)["orderDetails"]
    assert (line["productId"], line["productCode"], line["quantity"], line["price"]) == (CASE, "SP000301", 1, 230000)
