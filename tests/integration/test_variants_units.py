"""Variants and units over real HTTP, against the simulated KiotViet's shirt in two sizes and its
drink sold by the can and by the case of 24 (`sandbox.kiotviet_data.add_demo_assortment`)."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from sandbox.kiotviet_data import add_demo_assortment, grow_catalogue
from tests.helpers import sample, wait_for
from tests.integration.conftest import Shop
from tests.integration.test_full_sync import finished, start

pytestmark = pytest.mark.integration
SHIRT, SIZE_M, SIZE_L, CAN, CASE = 3101, 3102, 3103, 3201, 3202


@pytest.fixture
def assorted(shop: Shop) -> Shop:
    add_demo_assortment(shop.retailer)
    return shop


def on_abaha(shop: Shop, product_id: int) -> dict[str, Any]:
    found: dict[str, Any] = shop.abaha.products[str(product_id)]
    return found


def test_a_full_sync_of_variant_groups_and_unit_rows_links_them_and_derives_unit_stock(assorted: Shop) -> None:
    grow_catalogue(assorted.retailer, products=150, variant_groups=30, variants_per_group=3, unit_rows=40)
    finished(assorted, start(assorted, ["products"]), deadline=180)
    kv = assorted.retailer.products
    for product_id, row in kv.items():
        written = on_abaha(assorted, product_id)
        master = row.get("masterProductId")
        base = row.get("masterUnitId")
        assert written["master_kv_id"] == (master if master not in (None, product_id) else None), product_id
        if base not in (None, product_id):
            assert written["unit_of"] == {"kv_id": base, "conversion": row["conversionValue"]}
            base_stock = on_abaha(assorted, base)["stock"]
            assert written["stock"] == base_stock // row["conversionValue"], product_id
            assert written["images"] == on_abaha(assorted, base)["images"]
        else:
            assert written["unit_of"] is None
    assert (on_abaha(assorted, CAN)["stock"], on_abaha(assorted, CASE)["stock"]) == (216, 9)


def test_a_new_variant_by_webhook_joins_its_group(assorted: Shop) -> None:
    finished(assorted, start(assorted, ["products"]))
    size = [{"attributeName": "KÍCH THƯỚC", "attributeValue": "XL"}]
    assorted.kiotviet_change("products/3104", {"code": "SP000200-XL", "name": "Áo sơ mi Oxford", "basePrice": 360000,
                                               "masterProductId": SHIRT, "attributes": size})  # fmt: skip
    written = wait_for(lambda: assorted.abaha.products.get("3104"))
    assert written["master_kv_id"] == SHIRT
    assert written["attributes"] == [{"name": "KÍCH THƯỚC", "value": "XL"}]


def test_a_stock_change_of_the_can_updates_the_case(assorted: Shop) -> None:
    finished(assorted, start(assorted, ["products"]))
    assorted.kiotviet_change(f"products/{CAN}/stock", {"branchId": 11, "onHand": 100, "reserved": 4})
    wait_for(lambda: on_abaha(assorted, CASE)["stock"] == 4)  # 96 cans make 4 whole cases
    assert on_abaha(assorted, CAN)["stock"] == 96


def test_an_order_for_a_case_becomes_a_kiotviet_line_for_the_case(assorted: Shop) -> None:
    finished(assorted, start(assorted, ["products"]))
    order = {**sample("abaha/order.created")["data"], "id": 88001, "code": "DH88001", "discount": 0,
             "shipping_fee": 0, "other_fees": [], "total": 460000,
             "items": [{"sku": "SP000301", "name": "Thùng 24 lon", "quantity": 2, "unit_price": 230000}]}  # fmt: skip
    url = f"{assorted.sandbox_url}/_sandbox/abaha/shops/{assorted.shop_id}/orders"
    assert requests.post(url, json=order, timeout=10).json()["delivered"] == 202
    wait_for(lambda: assorted.abaha.orders["88001"].get("kiotviet"))
    (made,) = [o for o in assorted.retailer.orders.values() if "[abaha:88001]" in o["description"]]
    (line,) = made["orderDetails"]
    assert (line["productId"], line["productCode"], line["quantity"]) == (CASE, "SP000301", 2)
    assert made["total"] == 460000
