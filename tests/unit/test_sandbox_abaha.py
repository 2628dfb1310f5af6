"""The simulated Abaha: customers by phone, product batches item by item, lists by `updated_at`
that a test can shift between two reads, and Abaha's one-second timestamps."""

from __future__ import annotations

import re
from typing import Any

import pytest
import responses

from sandbox.abaha_sales import now_text
from tests.unit.sandbox_support import Peers

SHOP = "/_sandbox/abaha/shops/shop-1"


@pytest.fixture
def peers() -> Peers:
    return Peers.start()


def product(kv_id: Any, **fields: Any) -> dict[str, Any]:
    return {"kv_id": kv_id, "sku": f"SP{kv_id}", "name": "Áo", "price": 100000, "stock": 3, **fields}


def customer(peers: Peers, customer_id: int, **fields: Any) -> None:
    peers.client.post(f"{SHOP}/customers/{customer_id}", json=fields, query_string={"deliver": 0})


@pytest.mark.parametrize("asked", ["0912345678", "84912345678", "+84912345678"])
def test_customers_are_found_by_phone_in_any_of_its_forms(peers: Peers, asked: str) -> None:
    customer(peers, 1, name="An", phone="+84 912 345 678")
    customer(peers, 2, name="Bình", phone="0987654321")
    customer(peers, 3, name="An (cũ)", phone="0912345678")
    answer = peers.abaha("GET", "/customers", phone=asked).get_json()
    assert sorted(c["id"] for c in answer["data"]) == [1, 3] and answer["next_page"] is None


def test_a_batch_put_stores_the_valid_items_and_reports_each(peers: Peers) -> None:
    items = [product(1, master_kv_id=9, unit_of=None), {"kv_id": 2, "sku": "SP2"}, product(3, unit_of={
        "kv_id": 1, "conversion": 24}), {"sku": "no id", "name": "x"}]  # fmt: skip
    answer = peers.abaha("PUT", "/products:batch", {"items": items})
    assert answer.status_code == 200
    assert answer.get_json()["results"] == [
        {"kv_id": 1, "status": "ok"}, {"kv_id": 2, "status": "error", "error": "sku and name are required"},
        {"kv_id": 3, "status": "ok"},
        {"kv_id": None, "status": "error", "error": "kv_id must be an integer"}]  # fmt: skip
    assert sorted(peers.shop.products) == ["1", "3"]
    assert peers.shop.products["1"]["master_kv_id"] == 9 and "kv_id" not in peers.shop.products["1"]
    assert peers.shop.products["3"]["unit_of"] == {"kv_id": 1, "conversion": 24}


@pytest.mark.parametrize("verb", ["PUT", "PATCH"])
def test_a_batch_of_more_than_100_is_refused_whole(peers: Peers, verb: str) -> None:
    answer = peers.abaha(verb, "/products:batch", {"items": [product(n) for n in range(101)]})
    assert answer.status_code == 422 and answer.get_json()["error"]["code"] == "too_many"
    assert peers.shop.products == {}
    assert peers.abaha(verb, "/products:batch", {"items": {"kv_id": 1}}).status_code == 422


def test_a_batch_patch_changes_known_products_and_names_the_unknown(peers: Peers) -> None:
    peers.abaha("PUT", "/products:batch", {"items": [product(1), product(2)]})
    answer = peers.abaha("PATCH", "/products:batch", {"items": [
        {"kv_id": 1, "stock": 0}, {"kv_id": 7, "stock": 5}, {"kv_id": 2, "name": ""}, {"kv_id": "2"}]})  # fmt: skip
    assert answer.get_json()["results"] == [
        {"kv_id": 1, "status": "ok"}, {"kv_id": 7, "status": "not_found"},
        {"kv_id": 2, "status": "error", "error": "sku and name are required"},
        {"kv_id": "2", "status": "error", "error": "kv_id must be an integer"}]  # fmt: skip
    assert (peers.shop.products["1"]["stock"], peers.shop.products["2"]["name"]) == (0, "Áo")
    assert "7" not in peers.shop.products


def test_a_single_put_keeps_every_field_given(peers: Peers) -> None:
    body = {**product(5), "master_kv_id": 4, "unit_of": None, "something_new": [1]}
    del body["kv_id"]
    peers.abaha("PUT", "/products/5", body)
    assert peers.shop.products["5"] == body


def test_lists_since_a_moment_are_inclusive_sorted_by_time_then_id_and_paged(peers: Peers) -> None:
    for customer_id, stamp in ((5, "10:00:01"), (3, "10:00:00"), (4, "10:00:00"), (1, "09:59:59")):
        customer(peers, customer_id, name=f"K{customer_id}")
        peers.shop.customers[str(customer_id)]["updated_at"] = f"2026-11-30T{stamp}+07:00"
    since = {"updated_since": "2026-11-30T10:00:00+07:00", "per_page": 2}
    first = peers.abaha("GET", "/customers", **since, page=1).get_json()
    second = peers.abaha("GET", "/customers", **since, page=2).get_json()
    assert ([c["id"] for c in first["data"]], first["next_page"]) == ([3, 4], 2)
    assert ([c["id"] for c in second["data"]], second["next_page"]) == ([5], None)
    utc = peers.abaha("GET", "/customers", updated_since="2026-11-30T03:00:01Z").get_json()
    assert [c["id"] for c in utc["data"]] == [5]


@responses.activate
def test_touching_an_order_moves_it_between_two_reads_without_an_event(peers: Peers) -> None:
    peers.shop.webhook_url, peers.shop.webhook_token = "http://sync.test/webhooks/abaha/shop-1", "t"
    for order_id in (1, 2, 3):
        peers.client.post(f"{SHOP}/orders", json={"id": order_id, "code": f"DH{order_id}"}, query_string={"deliver": 0})
        peers.shop.orders[str(order_id)]["updated_at"] = f"2020-11-30T10:00:0{order_id}+07:00"
    read = {"updated_since": "2020-11-30T10:00:00+07:00", "per_page": 2}
    assert [o["id"] for o in peers.abaha("GET", "/orders", **read, page=1).get_json()["data"]] == [1, 2]
    touched = peers.client.post(f"{SHOP}/orders/1/touch", json={"note": "gọi trước"}).get_json()
    assert touched["note"] == "gọi trước" and touched["updated_at"] > "2020-11-30T10:00:03+07:00"
    assert [o["id"] for o in peers.abaha("GET", "/orders", **read, page=2).get_json()["data"]] == [1]  # 3 skipped
    assert len(responses.calls) == 0  # no event posted
    stamped = peers.client.post(f"{SHOP}/customers/9/touch", json={"updated_at": "2026-01-01T00:00:00+07:00"})
    assert stamped.status_code == 404  # no such customer: touching does not create


def test_the_state_view_shows_orders_and_customers(peers: Peers) -> None:
    customer(peers, 1, name="An")
    peers.client.post(f"{SHOP}/orders", json={"id": 8, "code": "DH8"}, query_string={"deliver": 0})
    state = peers.client.get(SHOP).get_json()
    assert list(state["customers"]) == ["1"] and state["orders"]["8"]["code"] == "DH8"


def test_abaha_stamps_whole_seconds(peers: Peers) -> None:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+07:00", now_text())
    peers.client.post(SHOP, json={"token": "abaha-token", "timespec": "seconds"})
    customer(peers, 1, name="An")
    assert re.fullmatch(r"[-\d]+T[\d:]+\+07:00", peers.shop.customers["1"]["updated_at"])
    assert peers.client.post(SHOP, json={"token": "abaha-token", "timespec": "hours"}).status_code == 422


def test_linking_by_abaha_id_keeps_the_existing_customer(peers: Peers) -> None:
    customer(peers, 1, name="An", phone="0912345678")
    answer = peers.abaha("PUT", "/customers/by-kiotviet/7001", {"abaha_id": 1, "name": "An", "phone": "0912345678"})
    assert answer.get_json() == {"id": 1} and peers.shop.customers["1"]["kv_id"] == 7001
    assert len(peers.shop.customers) == 1
