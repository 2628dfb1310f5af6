"""Real KiotViet shops, over real HTTP: webhooks another integration holds, warnings kept current,
undated stock redelivered late, a delivery of 16,000 items, quarantined deliveries admitted."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis
import requests
from rq import Queue
from rq.serializers import JSONSerializer

from sandbox.kiotviet_data import demo_retailer, now_text
from sandbox.stack import LocalStack
from tests.helpers import sign, wait_for
from tests.integration.conftest import Shop, connect_shop

pytestmark = pytest.mark.integration
FOREIGN = "https://mykiotviet.example.vn/hooks/stock"


def control(shop: Shop, verb: str, path: str, body: Any = None, **params: str) -> Any:
    url = f"{shop.sandbox_url}/_sandbox/kiotviet/{shop.retailer.name}/{path}"
    answer = requests.request(verb, url, json=body, params=params, timeout=30)
    answer.raise_for_status()
    return answer.json()


def connection_body(stack: LocalStack, name: str, **changes: Any) -> dict[str, Any]:
    assert stack.sandbox is not None
    retailer = stack.sandbox.kiotviet.retailers.get(name) or stack.sandbox.kiotviet.add_retailer(demo_retailer(name))
    stack.sandbox.abaha.add_shop(f"shop-{name}", "tok")
    return {"retailer": name, "client_id": retailer.client_id, "client_secret": retailer.client_secret,
            "branch_id": 11, "surcharge_code": "THK000001", "abaha_api_token": "tok", **changes}  # fmt: skip


def test_a_type_another_integration_holds_is_taken_only_when_asked(stack: LocalStack) -> None:
    body = connection_body(stack, "takeover")
    assert stack.sandbox is not None
    retailer = stack.sandbox.kiotviet.retailers["takeover"]
    requests.post(f"{stack.sandbox.url}/_sandbox/kiotviet/takeover/webhooks", json={"type": "stock.update",
                  "url": FOREIGN}, timeout=5).raise_for_status()  # fmt: skip
    refused = stack.admin("PUT", "/admin/connections/shop-takeover", json=body)
    assert refused.status_code == 422
    assert any("stock.update" in e and "mykiotviet.example.vn" in e for e in refused.json()["errors"])
    assert [h["url"] for h in retailer.webhooks.values()] == [FOREIGN]  # nothing changed
    assert stack.admin("GET", "/admin/connections/shop-takeover").status_code == 404
    saved = stack.admin("PUT", "/admin/connections/shop-takeover", json={**body, "take_over_webhooks": True})
    assert saved.status_code == 200, saved.text
    assert any("stock.update" in w and "mykiotviet.example.vn" in w for w in saved.json()["warnings"])
    assert FOREIGN not in {h["url"] for h in retailer.webhooks.values()}
    assert len(retailer.webhooks) == 15


def reconcile_now(stack: LocalStack, shop_id: str) -> None:
    """Run the shop's reconciliation once (this stack has periodic reconciliation off)."""
    connection = redis.Redis.from_url(stack.env["REDIS_URL"])
    queue = Queue("sync", connection=connection, serializer=JSONSerializer)
    job = queue.enqueue("workers.reconcile.reconcile_shop", shop_id)
    wait_for(lambda: job.get_status(refresh=True) in ("finished", "failed"), deadline=60)
    assert job.get_status() == "finished", job.latest_result()


def test_reconciliation_keeps_warnings_current_and_registers_a_dropped_hook_again(shop: Shop) -> None:
    hooks = control(shop, "GET", "webhooks")
    product_hook = next(h for h in hooks if h["type"] == "product.update")
    control(shop, "PATCH", f"webhooks/{product_hook['id']}", {"isActive": False})  # KiotViet deactivated it
    stock_hook = next(h for h in hooks if h["type"] == "stock.update")
    control(shop, "DELETE", f"webhooks/{stock_hook['id']}")
    control(shop, "POST", "webhooks", {"type": "stock.update", "url": FOREIGN})  # another plugin took the type
    control(shop, "POST", "settings", {"AllowOrderWhenOutStock": False})  # ordering out of stock turned off
    reconcile_now(shop.stack, shop.shop_id)
    warnings = shop.stack.admin("GET", f"/admin/connections/{shop.shop_id}").json()["warnings"]
    assert any("stock.update" in w and "mykiotviet.example.vn" in w for w in warnings)
    assert any("AllowOrderWhenOutStock" in w for w in warnings)
    ours = [h for h in control(shop, "GET", "webhooks") if h["type"] == "product.update"]
    assert len(ours) == 1 and ours[0]["isActive"] and ours[0]["id"] != product_hook["id"]
    shop.kiotviet_change("products/3001", {"basePrice": 199000})  # and changes arrive again
    wait_for(lambda: (shop.abaha.products.get("3001") or {}).get("price") == 199000)


def test_a_late_redelivery_of_an_older_stock_value_leaves_the_current_one(shop: Shop) -> None:
    shop.kiotviet_change("products/3001", {})
    wait_for(lambda: shop.abaha.products.get("3001"))
    first = control(shop, "POST", "products/3001/stock", {"branchId": 11, "onHand": 30, "reserved": 0}, deliver="0")
    shop.kiotviet_change("products/3001/stock", {"branchId": 11, "onHand": 12, "reserved": 2})
    wait_for(lambda: shop.abaha.products["3001"]["stock"] == 10)
    control(shop, "POST", f"deliveries/{first['delivery']['id']}/redeliver")  # KiotViet resends, late
    wait_for(lambda: shop.counts()["unchanged"] + shop.counts()["stale"] >= 1)
    assert shop.abaha.products["3001"]["stock"] == 10


def test_a_delivery_of_16000_items_is_answered_200_and_every_item_applied(shop: Shop) -> None:
    counted = now_text()  # a stock count of the whole shop, just now
    products = {p: {"id": p, "code": f"SP{p}", "name": f"Hàng {p}", "basePrice": 1000, "isActive": True,
                    "allowsSale": True, "attributes": [], "modifiedDate": counted, "stockModifiedDate": counted,
                    "inventories": [{"branchId": 11, "onHand": p % 50, "reserved": 0}]}
                for p in range(200_000, 216_000)}  # fmt: skip
    shop.retailer.products.update(products)
    shop.abaha.products.update({str(p): {"sku": f"SP{p}", "name": f"Hàng {p}", "stock": None} for p in products})
    items = [{"ProductId": p, "BranchId": 11, "OnHand": 0} for p in products]
    body = json.dumps({"Id": "count-all", "Attempt": 1, "Notifications": [{"Action": "stock.update.1", "Data": items}]},
                      separators=(",", ":")).encode()  # fmt: skip
    assert len(body) < 1024 * 1024
    answer = requests.post(f"{shop.stack.url}/webhooks/kiotviet/{shop.shop_id}", data=body, timeout=10,
                           headers={"X-Hub-Signature": sign(body, shop.webhook_secret("stock.update"))})  # fmt: skip
    assert (answer.status_code, answer.json()["new"]) == (200, 16_000)
    wait_for(lambda: all(shop.abaha.products[str(p)]["stock"] == p % 50 for p in products), deadline=120, interval=1)
    reads = control(shop, "GET", "calls", method="GET")["calls"]
    assert len([c for c in reads if c["path"].endswith("/productOnHands")]) <= 200  # pages of 100 (160), not 16,000


def test_a_quarantined_delivery_is_listed_with_its_reason_and_rechecked_on_request(shop: Shop) -> None:
    delivery = control(shop, "POST", "products/3002", {"name": "Áo sơ mi xanh"}, deliver="0")["delivery"]
    raw = json.dumps(delivery["body"], ensure_ascii=False).encode()
    url = f"{shop.stack.url}/webhooks/kiotviet/{shop.shop_id}"
    answer = requests.post(url, data=raw, headers={"X-Hub-Signature": sign(raw, "not our secret")}, timeout=5)
    assert answer.json() == {"status": "received"}
    (kept,) = shop.stack.admin("GET", "/admin/quarantine", params={"shop_id": shop.shop_id}).json()["deliveries"]
    assert (kept["reason"], kept["signed"]) == ("bad signature", False)
    assert "Áo sơ mi xanh" in kept["body_preview"]
    admitted = shop.stack.admin("POST", f"/admin/quarantine/{shop.shop_id}/{kept['id']}/admit").json()
    assert admitted == {"admitted": [], "still_rejected": [{"id": kept["id"], "reason": "bad signature"}]}
    assert "3002" not in shop.abaha.products


def test_a_flood_to_made_up_shops_does_not_reach_the_store(stack: LocalStack, shop: Shop) -> None:
    for n in range(300):
        requests.post(f"{stack.url}/webhooks/kiotviet/made-up-{n}", data=b"{}", timeout=5,
                      headers={"X-Hub-Signature": "x"})  # fmt: skip
    connection = redis.Redis.from_url(stack.env["REDIS_URL"])
    assert not list(connection.scan_iter(match="*made-up*"))
    counted = stack.admin("GET", "/admin/quarantine").json()["unknown_shop"]
    assert counted["unknown shop"] >= 300
    connect_shop(stack)  # and the service is well
