"""Full sync ("Đồng bộ") from the simulated KiotViet to the simulated Abaha."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from sandbox.kiotviet_data import grow_catalogue
from sandbox.stack import LocalStack
from tests.helpers import sample, sign, wait_for
from tests.integration.conftest import Shop, connect_shop

pytestmark = pytest.mark.integration


def start(shop: Shop, entities: list[str] | None = None) -> str:
    answer = shop.stack.admin("POST", f"/admin/connections/{shop.shop_id}/sync",
                              json={"entities": entities} if entities else None)  # fmt: skip
    assert answer.status_code == 202, answer.text
    run_id: str = answer.json()["id"]
    return run_id


def run_of(shop: Shop) -> dict[str, Any]:
    run: dict[str, Any] = shop.stack.admin("GET", f"/admin/connections/{shop.shop_id}/sync").json()
    return run


def finished(shop: Shop, run_id: str, deadline: float = 120) -> dict[str, Any]:
    def over() -> dict[str, Any] | None:
        run = run_of(shop)
        return run if run["id"] == run_id and run["state"] in ("done", "failed") else None

    run = wait_for(over, deadline=deadline, interval=0.2)
    assert run["state"] == "done", run
    return run


def expected_product(product: dict[str, Any]) -> tuple[Any, ...]:
    branch = next(i for i in product["inventories"] if i["branchId"] == 11)
    active = product["isActive"] and product["allowsSale"]
    return product["code"], product["basePrice"], active, max(0, branch["onHand"] - branch["reserved"])


def test_a_full_sync_makes_abaha_equal_to_kiotviet(shop: Shop) -> None:
    # several pages of every entity (KiotViet pages hold 100 items)
    grow_catalogue(shop.retailer, products=230, categories=120, pricebooks=104, prices_per_book=150, priced_books=2,
                   customers=130, customer_groups=104)  # fmt: skip
    run = finished(shop, start(shop))
    kv, ab = shop.retailer, shop.abaha
    assert {int(k): (p["sku"], p["price"], p["active"], p["stock"]) for k, p in ab.products.items()} == {
        pid: expected_product(p) for pid, p in kv.products.items()}  # fmt: skip
    assert {int(k): c["name"] for k, c in ab.categories.items()} == {
        cid: c["categoryName"] for cid, c in kv.categories.items()}  # fmt: skip
    assert {int(k): p["name"] for k, p in ab.price_lists.items()} == {b: p["name"] for b, p in kv.pricebooks.items()}
    assert {int(book): {int(p): v for p, v in prices.items()} for book, prices in ab.prices.items() if prices} == {
        bid: b["prices"] for bid, b in kv.pricebooks.items() if b["prices"]}  # fmt: skip
    assert sorted(c["kv_id"] for c in ab.customers.values()) == sorted(kv.customers)
    assert {int(k): g["name"] for k, g in ab.customer_groups.items()} == {
        g["id"]: g["name"] for g in kv.customer_groups
    }
    assert run["entities"]["products"] == {"done": 232, "total": 232}
    assert run["entities"]["pricebooks"] == {"done": 105, "total": 105}
    assert run["entities"]["customer_groups"] == {"done": 105, "total": 105}
    assert run["entities"]["prices"] == {"done": 301, "total": 301}
    assert run["errors"] == []
    shown = shop.stack.admin("GET", f"/admin/connections/{shop.shop_id}").json()["state"]["last_sync"]
    assert (shown["id"], shown["state"]) == (run["id"], "done")
    # deleted in KiotViet after the first sync: the next one hides the products, drops the category
    for pid in (100_003, 100_004):
        requests.delete(f"{shop.sandbox_url}/_sandbox/kiotviet/{kv.name}/products/{pid}?deliver=0", timeout=5)
    finished(shop, start(shop, ["products"]))
    assert ab.products["100003"]["active"] is False and ab.products["100004"]["active"] is False


def test_a_webhook_newer_than_the_page_survives_the_sync(shop: Shop) -> None:
    body = sample("kiotviet/product.update")
    body["Notifications"][0]["Data"][0].update(
        Name="Tên từ webhook", ModifiedDate="2030-01-01T00:00:00.0000000+07:00", MasterProductId=None, MasterUnitId=None
    )
    raw = json.dumps(body).encode()
    requests.post(f"{shop.stack.url}/webhooks/kiotviet/{shop.shop_id}", data=raw, timeout=5,
                  headers={"X-Hub-Signature": sign(raw, shop.webhook_secret("product.update"))})  # fmt: skip
    wait_for(lambda: shop.abaha.products.get("3001"))
    finished(shop, start(shop, ["products"]))
    assert shop.abaha.products["3001"]["name"] == "Tên từ webhook"
    assert shop.abaha.products["3002"]["name"] == "Áo sơ mi"  # the rest came from the page


def test_two_shops_syncing_at_once_both_progress(stack: LocalStack) -> None:
    first, second = connect_shop(stack), connect_shop(stack)
    for shop in (first, second):
        grow_catalogue(shop.retailer, products=600)
    runs = [(shop, start(shop, ["products"])) for shop in (first, second)]
    done = [finished(shop, run_id) for shop, run_id in runs]
    # each began before the other ended: their pages took turns
    assert done[0]["running_at"] < done[1]["done_at"] and done[1]["running_at"] < done[0]["done_at"]
    assert all(run["entities"]["products"]["done"] == 602 for run in done)


def test_one_shops_sync_does_not_hold_up_another_shops_webhooks(stack: LocalStack) -> None:
    busy, other = connect_shop(stack), connect_shop(stack)
    grow_catalogue(busy.retailer, products=3000)
    run_id = start(busy, ["products"])
    wait_for(lambda: run_of(busy)["entities"]["products"]["done"] > 0)
    other.kiotviet_change("products/3001", {"basePrice": 123000})
    wait_for(lambda: (other.abaha.products.get("3001") or {}).get("price") == 123000)
    assert run_of(busy)["state"] == "running"
    finished(busy, run_id)


def test_a_sync_request_names_what_is_wrong(shop: Shop) -> None:
    answer = shop.stack.admin("POST", f"/admin/connections/{shop.shop_id}/sync", json={"entities": ["orders"]})
    assert answer.status_code == 422 and "unknown orders" in answer.json()["errors"][0]
    assert shop.stack.admin("POST", "/admin/connections/nobody/sync").status_code == 404
