"""Abaha orders become exactly one KiotViet order; KiotViet's status comes back to Abaha."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import signal
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psutil
import pytest
import redis
import requests
from rq import Queue, Worker
from rq.job import Job
from rq.serializers import JSONSerializer

from adapters.inbox import RETRY_INTERVALS
from admin.failed import describe
from sandbox.abaha_sales import post_event
from sandbox.kiotviet_data import OrderHold
from sandbox.stack import LocalStack
from tests.helpers import sample, sign, wait_for
from tests.integration.conftest import Shop, connect_shop, log_text

pytestmark = pytest.mark.integration
_order_ids = itertools.count(90001)


def abaha_order(**changes: Any) -> dict[str, Any]:
    order = sample("abaha/order.created")["data"]
    number = next(_order_ids)
    return {**order, "id": number, "code": f"DH{number}", **changes}


def place(shop: Shop, order: dict[str, Any]) -> dict[str, Any]:
    answer = requests.post(f"{shop.sandbox_url}/_sandbox/abaha/shops/{shop.shop_id}/orders", json=order, timeout=10)
    assert answer.json()["delivered"] == 202, answer.text
    return order


def kiotviet_orders_of(shop: Shop, order: dict[str, Any]) -> list[dict[str, Any]]:
    return [o for o in shop.retailer.orders.values() if f"[abaha:{order['id']}]" in (o.get("description") or "")]


def linked(shop: Shop, order: dict[str, Any]) -> dict[str, Any] | None:
    link: dict[str, Any] | None = shop.abaha.orders[str(order["id"])].get("kiotviet")
    return link


def failed_jobs(stack: LocalStack) -> list[Job]:
    connection = redis.Redis.from_url(stack.env["REDIS_URL"])
    registry = Queue("events", connection=connection, serializer=JSONSerializer).failed_job_registry
    return [Job.fetch(i, connection=connection, serializer=JSONSerializer) for i in registry.get_job_ids()]


def failed_job_of(stack: LocalStack, shop: Shop) -> Job:
    """The shop's failed job, once RQ has put it in the failed registry."""
    return wait_for(lambda: next((j for j in failed_jobs(stack) if describe(j)[0] == shop.shop_id), None))


def failure_of(stack: LocalStack, shop: Shop) -> str:
    result = failed_job_of(stack, shop).latest_result()
    assert result is not None and result.exc_string is not None
    return result.exc_string


def test_an_abaha_order_becomes_one_kiotviet_order_linked_back(shop: Shop) -> None:
    order = place(shop, abaha_order())
    link = wait_for(lambda: linked(shop, order))
    (made,) = kiotviet_orders_of(shop, order)
    assert link == {"kv_order_id": made["id"], "kv_order_code": made["code"]}
    assert made["branchId"] == 11 and order["code"] in made["description"]
    assert made["total"] == order["total"] == 320000
    assert made["invoiceOrderSurcharges"] == [{"surchargeId": 1, "price": 40000}]  # shipping + COD fee
    customer = shop.retailer.customers[made["customerId"]]
    assert customer["contactNumber"] == "0912345678"


def test_totals_match_with_line_discounts_order_discount_shipping_and_two_fees(shop: Shop) -> None:
    items = [{"sku": "SP000123", "kv_product_id": 3001, "name": "Áo thun", "quantity": 3, "unit_price": 99000,
              "discount": 10000},
             {"sku": "SP000124", "kv_product_id": None, "name": "Áo sơ mi", "quantity": 1, "unit_price": 250000,
              "discount": 0}]  # fmt: skip
    fees = [{"name": "Phí COD", "amount": 10000}, {"name": "Gói quà", "amount": 5000}]
    total = 3 * 99000 - 10000 + 250000 - 15000 + 30000 + 15000
    order = place(shop, abaha_order(items=items, discount=15000, shipping_fee=30000, other_fees=fees, total=total))
    wait_for(lambda: linked(shop, order))
    (made,) = kiotviet_orders_of(shop, order)
    assert made["total"] == total
    assert [d["productId"] for d in made["orderDetails"]] == [3001, 3002]  # the second found by its code
    connection = shop.stack.admin("GET", f"/admin/connections/{shop.shop_id}").json()
    assert connection["state"]["counts"]["total_mismatch"] == 0


def test_one_event_delivered_three_times_concurrently_makes_one_order(shop: Shop) -> None:
    order = abaha_order()
    shop.abaha.orders[str(order["id"])] = {**order, "status": "new"}
    body = json.dumps({"id": "evt_once", "type": "order.created", "shop_id": shop.shop_id,
                       "occurred_at": "2026-11-30T10:15:00+07:00", "data": order}).encode()  # fmt: skip
    token = shop.saved["abaha_webhook"]["token"]
    headers = {"X-Abaha-Token": token, "Content-Type": "application/json",
               "X-Abaha-Signature": "sha256=" + hmac.new(token.encode(), body, hashlib.sha256).hexdigest()}  # fmt: skip
    url = f"{shop.stack.url}/webhooks/abaha/{shop.shop_id}"
    with ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(lambda _: requests.post(url, data=body, headers=headers, timeout=10), range(3)))
    assert [a.status_code for a in answers] == [202, 202, 202]
    wait_for(lambda: linked(shop, order))
    wait_for(lambda: shop.counts().get("applied", 0) >= 1)  # its batch is over, the version recorded
    updated = json.dumps({**json.loads(body), "id": "evt_update", "type": "order.updated"}).encode()
    requests.post(url, data=updated, headers={"X-Abaha-Token": token}, timeout=10)
    wait_for(lambda: shop.counts()["stale"] >= 1)  # the same version again: not even looked at
    assert len(kiotviet_orders_of(shop, order)) == 1


@pytest.mark.slow
def test_a_worker_killed_right_after_kiotviet_answered_still_makes_one_order(stack: LocalStack) -> None:
    shop = connect_shop(stack)
    hold = OrderHold()
    shop.retailer.order_hold = hold
    order = place(shop, abaha_order())
    assert hold.created.wait(timeout=30)  # KiotViet has made the order; its answer is held
    connection = redis.Redis.from_url(stack.env["REDIS_URL"])
    busy = wait_for(lambda: [w for w in Worker.all(connection=connection) if w.get_current_job_id()])
    worker = psutil.Process(busy[0].pid)
    for process in [*worker.children(recursive=True), worker]:  # the work horse running the job, and its worker
        process.send_signal(signal.SIGKILL)
    hold.release.set()
    for worker in [w for w in stack.workers if w.pid == busy[0].pid]:
        worker.wait(timeout=10)
        stack.workers.remove(worker)
    stack.start_worker()
    wait_for(lambda: linked(shop, order), deadline=240, interval=1)
    assert len(kiotviet_orders_of(shop, order)) == 1
    adopted = [line for line in log_text(stack).splitlines() if "order.adopted" in line]
    assert any(order["code"] in line for line in adopted)  # found and adopted, not made again


def test_out_of_stock_refusal_names_the_setting_and_a_replay_after_the_fix_makes_one_order(
    stack: LocalStack, shop: Shop
) -> None:
    shop.retailer.settings["AllowOrderWhenOutStock"] = False
    order = place(shop, abaha_order(items=[{"sku": "SP000123", "kv_product_id": 3001, "name": "Áo", "quantity": 50,
                                            "unit_price": 1000, "discount": 0}], discount=0, total=90000))  # fmt: skip
    wait_for(lambda: shop.counts()["failed"] == 1)
    message = failure_of(stack, shop)
    assert "Cho phép đặt hàng khi hết tồn kho" in message and "Không đủ số lượng tồn kho" in message
    assert kiotviet_orders_of(shop, order) == []
    shop.retailer.settings["AllowOrderWhenOutStock"] = True
    assert stack.admin("POST", "/admin/failed/requeue", json={"shop_id": shop.shop_id}).json()["requeued"] == 1
    wait_for(lambda: linked(shop, order))
    assert len(kiotviet_orders_of(shop, order)) == 1


@pytest.mark.parametrize(
    "setup, order_changes, expected",
    [("ordering_off", {}, "Cho phép đặt hàng"),
     ("none", {"items": [{"sku": "NOPE-1", "name": "?", "quantity": 1, "unit_price": 1000, "discount": 0}]},
      "product code NOPE-1, which does not exist in KiotViet"),
     ("no_surcharge", {}, "no surcharge code")],
)  # fmt: skip
def test_refusals_an_operator_must_act_on_fail_at_once_with_a_clear_message(
    stack: LocalStack, setup: str, order_changes: dict[str, Any], expected: str
) -> None:
    shop = connect_shop(stack, surcharge_code=None) if setup == "no_surcharge" else connect_shop(stack)
    shop.retailer.ordering_enabled = setup != "ordering_off"
    order = place(shop, abaha_order(**order_changes))
    wait_for(lambda: shop.counts()["failed"] == 1)
    assert expected in failure_of(stack, shop)
    assert kiotviet_orders_of(shop, order) == []
    job = failed_job_of(stack, shop)
    assert job.get_status() == "failed"  # at once: no retry scheduled, waiting for the operator
    assert job.retries_left == len(RETRY_INTERVALS)  # a replay gets the whole schedule


def test_kiotviet_completion_and_cancellation_reach_abaha_and_other_statuses_do_not(shop: Shop) -> None:
    order = place(shop, abaha_order())
    wait_for(lambda: linked(shop, order))
    (made,) = kiotviet_orders_of(shop, order)
    status_url = f"{shop.sandbox_url}/_sandbox/kiotviet/{shop.retailer.name}/orders/{made['id']}/status"
    requests.post(status_url, json={"status": 5}, timeout=10)
    wait_for(lambda: shop.counts()["ignored"] == 1)
    assert shop.abaha.orders[str(order["id"])]["status"] == "new"
    requests.post(status_url, json={"status": 3}, timeout=10)
    wait_for(lambda: shop.abaha.orders[str(order["id"])]["status"] == "completed")
    requests.post(status_url, json={"status": 4}, timeout=10)  # Abaha answers 409 status_final
    wait_for(lambda: shop.counts()["applied"] >= 3)
    assert shop.abaha.orders[str(order["id"])]["status"] == "completed"
    assert shop.counts()["failed"] == 0


def test_a_cancelled_kiotviet_order_cancels_the_abaha_order(shop: Shop) -> None:
    order = place(shop, abaha_order())
    wait_for(lambda: linked(shop, order))
    (made,) = kiotviet_orders_of(shop, order)
    requests.post(f"{shop.sandbox_url}/_sandbox/kiotviet/{shop.retailer.name}/orders/{made['id']}/status",
                  json={"status": 4}, timeout=10)  # fmt: skip
    wait_for(lambda: shop.abaha.orders[str(order["id"])]["status"] == "cancelled")


def test_a_kiotviet_order_not_made_from_abaha_is_ignored(shop: Shop) -> None:
    body = json.dumps(sample("kiotviet/order.update.completed")).encode()
    secret = shop.webhook_secret("order.update")
    answer = requests.post(f"{shop.stack.url}/webhooks/kiotviet/{shop.shop_id}", data=body,
                           headers={"X-Hub-Signature": sign(body, secret)}, timeout=10)  # fmt: skip
    assert answer.json()["status"] == "accepted"
    wait_for(lambda: shop.counts()["ignored"] == 1)
    assert shop.abaha.writes == [] and shop.counts()["failed"] == 0


def test_a_status_change_made_on_abaha_changes_nothing(shop: Shop) -> None:
    order = place(shop, abaha_order())
    wait_for(lambda: linked(shop, order))

    change = {"id": order["id"], "status": "completed", "updated_at": "2026-11-30T11:00:00+07:00"}
    assert post_event(shop.shop_id, shop.abaha, "order.status_changed", change) == 202
    wait_for(lambda: shop.counts()["ignored"] == 1)
    (made,) = kiotviet_orders_of(shop, order)
    assert made["status"] == 1


def test_abaha_ingest_answers(shop: Shop) -> None:
    url = f"{shop.stack.url}/webhooks/abaha/{shop.shop_id}"
    token = shop.saved["abaha_webhook"]["token"]
    event = json.dumps(sample("abaha/customer.created") | {"shop_id": shop.shop_id}).encode()
    assert requests.post(url, data=event, timeout=5).status_code == 401
    assert requests.post(url, data=event, headers={"X-Abaha-Token": "wrong"}, timeout=5).status_code == 401
    bad_signature = {"X-Abaha-Token": token, "X-Abaha-Signature": "sha256=00"}
    assert requests.post(url, data=event, headers=bad_signature, timeout=5).status_code == 401
    assert requests.post(url, data=b"{not json", headers={"X-Abaha-Token": token}, timeout=5).status_code == 400
    no_type = json.dumps({"id": "e", "occurred_at": "2026-11-30T10:00:00+07:00", "data": {}}).encode()
    answer = requests.post(url, data=no_type, headers={"X-Abaha-Token": token}, timeout=5)
    assert answer.status_code == 400 and "type" in answer.json()["errors"][0]
    huge = b"{" + b" " * (1024 * 1024) + b"}"
    assert requests.post(url, data=huge, headers={"X-Abaha-Token": token}, timeout=5).status_code == 413
    product = json.dumps({"id": "p1", "type": "product.updated", "occurred_at": "2026-11-30T10:00:00+07:00",
                          "data": {"id": 1}}).encode()  # fmt: skip
    assert requests.post(url, data=product, headers={"X-Abaha-Token": token}, timeout=5).status_code == 202
    assert requests.post(f"{shop.stack.url}/webhooks/abaha/nobody", data=event, headers={"X-Abaha-Token": token},
                         timeout=5).status_code == 401  # fmt: skip


def fault(shop: Shop, **spec: Any) -> None:
    answer = requests.post(f"{shop.sandbox_url}/_sandbox/kiotviet/faults", json=spec, timeout=5)
    answer.raise_for_status()


@pytest.mark.slow
def test_a_524_after_kiotviet_made_the_order_ends_in_adoption_not_a_second_order(shop: Shop) -> None:
    fault(shop, status=524, count=1, path_contains="/orders", method="POST", after_write=True)
    order = place(shop, abaha_order())
    wait_for(lambda: linked(shop, order), deadline=180, interval=1)  # after the attempt settled (60 s)
    assert len(kiotviet_orders_of(shop, order)) == 1
    assert shop.counts()["failed"] == 0


def test_a_copy_of_an_order_made_in_kiotviet_and_cancelled_leaves_the_abaha_order(shop: Shop) -> None:
    order = place(shop, abaha_order())
    wait_for(lambda: linked(shop, order))
    (made,) = kiotviet_orders_of(shop, order)
    base = f"{shop.sandbox_url}/_sandbox/kiotviet/{shop.retailer.name}/orders"
    copy = requests.post(f"{base}/{made['id']}/copy", json={}, timeout=10).json()["order"]
    assert f"[abaha:{order['id']}]" in copy["description"]  # the copy carries our marker
    requests.post(f"{base}/{copy['id']}/status", json={"status": 4}, timeout=10)
    wait_for(lambda: shop.counts()["ignored"] >= 1)
    assert shop.abaha.orders[str(order["id"])]["status"] == "new"
    requests.post(f"{base}/{made['id']}/status", json={"status": 3}, timeout=10)
    wait_for(lambda: shop.abaha.orders[str(order["id"])]["status"] == "completed")


def test_a_dashboard_requeue_then_one_transient_error_retries_instead_of_failing(stack: LocalStack, shop: Shop) -> None:
    shop.retailer.ordering_enabled = False
    order = place(shop, abaha_order())
    job = failed_job_of(stack, shop)

    def requeue_from_the_dashboard() -> None:
        answer = requests.post(f"{stack.url}/admin/rq/job/{job.id}/requeue", auth=("ops", stack.env["ADMIN_TOKEN"]),
                               headers={"Origin": stack.url}, timeout=10)  # fmt: skip
        assert answer.status_code == 200, answer.text

    requeue_from_the_dashboard()  # too early: still refused, so it fails for good in RQ itself
    connection = redis.Redis.from_url(stack.env["REDIS_URL"])

    def failed_again() -> bool:
        again = Job.fetch(job.id, connection=connection, serializer=JSONSerializer)
        return bool(again.get_status() == "failed" and again.retries_left == 0 and again.started_at)

    wait_for(failed_again)
    shop.retailer.ordering_enabled = True
    # KiotViet unavailable while the order's customer is looked up (1 + 3 tries in place): transient
    fault(shop, status=503, count=4, path_contains="/customers", method="GET")
    requeue_from_the_dashboard()
    wait_for(lambda: linked(shop, order), deadline=60)  # retried 5 s later, not failed for good
    assert len(kiotviet_orders_of(shop, order)) == 1
