"""Reconciliation: changes whose webhook or event never arrived are pulled within an interval."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import parse_qs

import pytest
import redis
import requests

from adapters.syncruns import Watermarks
from sandbox.kiotviet_data import now_text
from sandbox.stack import LocalStack
from schemas.kiotviet import parse_kiotviet_datetime
from tests.helpers import sample, wait_for
from tests.integration.conftest import Shop, connect_shop

pytestmark = pytest.mark.integration
INTERVAL = 2


@pytest.fixture(scope="module")
def reconciling(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """A stack of its own, reconciling every 2 s (the shared one has reconciliation off)."""
    state = tmp_path_factory.mktemp("reconciling")
    environ = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "KIOTVIET_API_URL", "ABAHA_API_URL")}
    environ.update(LOG_FORMAT="json", RECONCILE_INTERVAL=str(INTERVAL))
    running = LocalStack(state, environ=environ, private_redis=True, log_dir=state / "logs").start(workers=2)
    yield running
    running.stop()


@pytest.fixture
def shop(reconciling: LocalStack) -> Shop:
    return connect_shop(reconciling)


def test_a_product_changed_without_a_webhook_arrives(shop: Shop) -> None:
    url = f"{shop.sandbox_url}/_sandbox/kiotviet/{shop.retailer.name}/products/3001?deliver=0"
    assert requests.post(url, json={"basePrice": 188000}, timeout=5).json()["delivered"] == []
    wait_for(lambda: (shop.abaha.products.get("3001") or {}).get("price") == 188000, deadline=30)


def test_stock_changed_without_a_webhook_arrives(shop: Shop) -> None:
    shop.kiotviet_change("products/3002", {})
    wait_for(lambda: shop.abaha.products.get("3002"))
    url = f"{shop.sandbox_url}/_sandbox/kiotviet/{shop.retailer.name}/products/3002/stock?deliver=0"
    requests.post(url, json={"branchId": 11, "onHand": 21, "reserved": 1}, timeout=5)
    wait_for(lambda: shop.abaha.products["3002"]["stock"] == 20, deadline=30)


def test_an_abaha_order_never_posted_arrives_in_kiotviet_once(shop: Shop) -> None:
    order = {**sample("abaha/order.created")["data"], "id": 77001, "code": "DH77001"}
    url = f"{shop.sandbox_url}/_sandbox/abaha/shops/{shop.shop_id}/orders?deliver=0"
    assert requests.post(url, json=order, timeout=5).json()["delivered"] is None
    wait_for(lambda: shop.abaha.orders["77001"].get("kiotviet"), deadline=30)
    made = [o for o in shop.retailer.orders.values() if "[abaha:77001]" in o["description"]]
    assert len(made) == 1


def test_a_kiotviet_status_change_without_a_webhook_arrives(shop: Shop) -> None:
    order = {**sample("abaha/order.created")["data"], "id": 77002, "code": "DH77002"}
    requests.post(f"{shop.sandbox_url}/_sandbox/abaha/shops/{shop.shop_id}/orders", json=order, timeout=5)
    link = wait_for(lambda: shop.abaha.orders["77002"].get("kiotviet"), deadline=30)
    shop.retailer.orders[link["kv_order_id"]].update(status=3, modifiedDate=now_text())
    wait_for(lambda: shop.abaha.orders["77002"]["status"] == "completed", deadline=30)


def category_pulls(shop: Shop) -> list[str]:
    """The `lastModifiedFrom` of each pull of categories KiotViet received, oldest first."""
    url = f"{shop.sandbox_url}/_sandbox/kiotviet/{shop.retailer.name}/calls"
    calls = requests.get(url, params={"method": "GET", "path_contains": "/categories"}, timeout=5).json()["calls"]
    queries = [parse_qs(c["query"]) for c in calls]
    return [q["lastModifiedFrom"][0] for q in queries if "lastModifiedFrom" in q]


def test_watermarks_survive_a_worker_restart(reconciling: LocalStack, shop: Shop) -> None:
    marks = Watermarks(redis.Redis.from_url(reconciling.env["REDIS_URL"]))
    mark = wait_for(lambda: marks.get(shop.shop_id, "kiotviet:categories"), deadline=30)
    for worker in list(reconciling.workers):
        reconciling.stop_worker(worker)
    requests.delete(f"{shop.sandbox_url}/_sandbox/kiotviet/{shop.retailer.name}/calls", timeout=5)
    reconciling.start_worker()
    reconciling.start_worker()
    url = f"{shop.sandbox_url}/_sandbox/kiotviet/{shop.retailer.name}/categories/150?deliver=0"
    requests.post(url, json={"categoryName": "Phụ kiện"}, timeout=5)
    wait_for(lambda: shop.abaha.categories.get("150"), deadline=30)
    # the first pull after the restart went on from the saved watermark, not from the connection's save
    first = parse_kiotviet_datetime(category_pulls(shop)[0])
    assert first >= parse_kiotviet_datetime(mark) - timedelta(seconds=1)


def test_150_abaha_orders_never_posted_all_arrive_in_kiotviet_once(shop: Shop) -> None:
    url = f"{shop.sandbox_url}/_sandbox/abaha/shops/{shop.shop_id}/orders?deliver=0"
    for n in range(150):
        order = {**sample("abaha/order.created")["data"], "id": 78000 + n, "code": f"DH{78000 + n}"}
        requests.post(url, json=order, timeout=5).raise_for_status()
    wait_for(lambda: all(shop.abaha.orders[str(78000 + n)].get("kiotviet") for n in range(150)), deadline=120)
    made = [o for o in shop.retailer.orders.values() if "[abaha:78" in (o.get("description") or "")]
    assert len(made) == 150
