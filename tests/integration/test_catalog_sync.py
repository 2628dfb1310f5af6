"""Catalog changes made in the simulated KiotViet reach the simulated Abaha through the service."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from sandbox.abaha import Fault
from sandbox.stack import LocalStack
from tests.helpers import sample, sign, wait_for
from tests.integration.conftest import Shop

pytestmark = pytest.mark.integration


def product_delivery(shop: Shop, delivery_id: str, **changes: object) -> bytes:
    body = sample("kiotviet/product.update")
    body["Id"] = delivery_id
    # a body that says the row is neither a variant nor a unit row (else it is read once)
    body["Notifications"][0]["Data"][0].update(MasterProductId=None, MasterUnitId=None, **changes)
    return json.dumps(body).encode()


def post(shop: Shop, body: bytes, kind: str = "product.update") -> requests.Response:
    headers = {"X-Hub-Signature": sign(body, shop.webhook_secret(kind)), "Content-Type": "application/json"}
    return requests.post(f"{shop.stack.url}/webhooks/kiotviet/{shop.shop_id}", data=body, headers=headers, timeout=10)


def product_writes(shop: Shop, kv_id: str) -> int:
    """How often Abaha was given this product, alone or in a batch."""
    return sum(
        1 for w in shop.abaha.writes if w.split(" (")[0] in (f"PUT /products/{kv_id}", f"PATCH /products/{kv_id}")
    )


def test_a_product_edited_in_kiotviet_appears_on_abaha(shop: Shop) -> None:
    shop.kiotviet_change("products/3001", {"basePrice": 175000})
    product = wait_for(lambda: shop.abaha.products.get("3001"))
    assert (product["sku"], product["price"], product["stock"], product["active"]) == ("SP000123", 175000, 13, True)


def test_the_same_delivery_three_times_concurrently_makes_one_write(shop: Shop) -> None:
    body = product_delivery(shop, "dup-delivery-1")
    with ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(lambda _: post(shop, body), range(3)))
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert sum(a.json()["new"] for a in answers) == 1
    wait_for(lambda: shop.counts()["applied"] == 1)
    # a later, distinct change is applied after it: the duplicates had every chance to run by then
    shop.kiotviet_change("products/3002", {"name": "Áo sơ mi mới"})
    wait_for(lambda: shop.counts()["applied"] == 2)
    assert product_writes(shop, "3001") == 1


def test_an_older_change_after_a_newer_one_leaves_the_newest_state(shop: Shop) -> None:
    newer = product_delivery(shop, "newer", BasePrice=200000, ModifiedDate="2026-11-30T11:00:00.0000000+07:00")
    older = product_delivery(shop, "older", BasePrice=100000, ModifiedDate="2026-11-30T10:00:00.0000000+07:00")
    assert post(shop, newer).json()["status"] == "accepted"
    wait_for(lambda: shop.counts()["applied"] == 1)
    assert post(shop, older).json()["status"] == "accepted"
    wait_for(lambda: shop.counts()["stale"] == 1)
    assert shop.abaha.products["3001"]["price"] == 200000


def test_inactive_and_deleted_products_are_hidden_and_kept(shop: Shop) -> None:
    shop.kiotviet_change("products/3001", {"isActive": False})
    shop.kiotviet_change("products/3002", {"description": "x"})
    wait_for(lambda: shop.abaha.products.get("3001") and shop.abaha.products.get("3002"))
    shop.kiotviet_change("products/3002", method="DELETE")
    wait_for(lambda: shop.abaha.products["3002"]["active"] is False)
    assert shop.abaha.products["3001"]["active"] is False
    assert "DELETE /products/3002" not in shop.abaha.writes


def test_stock_of_another_branch_is_ignored(shop: Shop) -> None:
    shop.kiotviet_change("products/3001", {})
    wait_for(lambda: shop.abaha.products.get("3001"))
    shop.kiotviet_change("products/3001/stock", {"branchId": 12, "onHand": 99, "reserved": 0})
    wait_for(lambda: shop.counts()["ignored"] == 1)
    assert shop.abaha.products["3001"]["stock"] == 13
    shop.kiotviet_change("products/3001/stock", {"branchId": 11, "onHand": 7, "reserved": 2})
    wait_for(lambda: shop.abaha.products["3001"]["stock"] == 5)


def test_abaha_answering_503_then_200_is_applied(stack: LocalStack, shop: Shop) -> None:
    assert stack.sandbox is not None
    fault = Fault(status=503, count=2, path_contains=f"/shops/{shop.shop_id}/categories/")
    stack.sandbox.abaha.faults.append(fault)
    shop.kiotviet_change("categories/105", {"categoryName": "Quần"})
    wait_for(lambda: shop.abaha.categories.get("105"))
    assert fault.count == 0
    assert shop.abaha.categories["105"] == {"name": "Quần", "parent_kv_id": None}


def test_prices_reach_the_price_list(shop: Shop) -> None:
    shop.kiotviet_change("pricebooks/201/prices/3001", {"price": 111000})
    wait_for(lambda: shop.abaha.prices.get("201", {}).get("3001") == 111000)
    assert shop.abaha.price_lists["201"] == {"name": "Giá sỉ", "active": True}


def test_a_permanent_refusal_fails_the_job_and_a_replay_applies_it(stack: LocalStack, shop: Shop) -> None:
    assert stack.sandbox is not None
    stack.sandbox.abaha.faults.append(Fault(status=422, count=1, path_contains=f"/shops/{shop.shop_id}/categories/"))
    shop.kiotviet_change("categories/106", {"categoryName": "Váy"})
    wait_for(lambda: shop.counts()["failed"] == 1)
    assert "106" not in shop.abaha.categories
    answer = stack.admin("POST", "/admin/failed/requeue", json={"shop_id": shop.shop_id})
    assert answer.json()["requeued"] == 1
    wait_for(lambda: shop.abaha.categories.get("106"))


def test_branch_changes_are_accepted_and_ignored(shop: Shop) -> None:
    body = json.dumps(sample("kiotviet/branch.update")).encode()
    assert post(shop, body, "branch.update").json()["status"] == "accepted"
    wait_for(lambda: shop.counts()["ignored"] == 1)
    assert shop.abaha.writes == []
