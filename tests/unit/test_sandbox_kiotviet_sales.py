"""The simulated KiotViet's customers and orders: lookups and lists as the real API answers
them, caller-chosen customer codes, orders edited and copied by hand, and the calls it received."""

from __future__ import annotations

from typing import Any

import pytest
import responses

from tests.unit.sandbox_support import Peers, receiving


@pytest.fixture
def peers() -> Peers:
    return Peers.start()


def add_customer(peers: Peers, **fields: Any) -> Any:
    answer = peers.api("POST", "/customers", json=fields)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.get_json()


def place(peers: Peers, description: str, branch: int = 11) -> Any:
    line = {"productId": 3001, "productCode": "SP000123", "quantity": 1, "price": 150000}
    body = {"branchId": branch, "description": description, "orderDetails": [line]}
    return peers.api("POST", "/orders", json=body).get_json()


@pytest.mark.parametrize("asked", ["0912345678", "84912345678", "+84912345678", "+84 912 345 678"])
def test_a_customer_is_found_by_phone_in_any_of_its_forms(peers: Peers, asked: str) -> None:
    made = add_customer(peers, name="An", contactNumber="0912345678")
    add_customer(peers, name="Bình", contactNumber="0987654321")
    assert [c["id"] for c in peers.api_get("/customers", contactNumber=asked)["data"]] == [made["id"]]


def test_a_customer_is_found_by_code_and_keeps_a_chosen_code_and_comments(peers: Peers) -> None:
    made = add_customer(peers, name="An", code="ABH000555", comments="Khách từ website")
    add_customer(peers, name="Bình")
    (found,) = peers.api_get("/customers", code="ABH000555")["data"]
    assert (found["id"], found["code"], found["comments"]) == (made["id"], "ABH000555", "Khách từ website")
    assert peers.api_get(f"/customers/{made['id']}")["comments"] == "Khách từ website"


def test_a_duplicate_customer_code_is_refused_on_create_and_on_update(peers: Peers) -> None:
    first = add_customer(peers, name="An", code="KH-A")
    second = add_customer(peers, name="Bình")
    refused = peers.api("POST", "/customers", json={"name": "Cường", "code": "kh-a"})
    assert refused.status_code == 400
    message = "Mã khách hàng kh-a đã tồn tại trong hệ thống"
    assert refused.get_json()["responseStatus"] == {"errorCode": "BadRequest", "message": message}
    assert peers.api("PUT", f"/customers/{second['id']}", json={"code": "KH-A"}).status_code == 400
    assert peers.api("PUT", f"/customers/{first['id']}", json={"code": "KH-A", "name": "An 2"}).status_code == 200
    assert len(peers.retailer.customers) == 2


def test_customers_since_a_moment_ordered_by_modified_date(peers: Peers) -> None:
    ids = [add_customer(peers, name=n)["id"] for n in ("An", "Bình", "Cường")]
    for n, customer_id in enumerate(reversed(ids)):
        peers.retailer.customers[customer_id]["modifiedDate"] = f"2030-01-01T10:0{n}:00.0000000+07:00"
    listed = peers.api_get("/customers", lastModifiedFrom="2030-01-01T10:01:00", orderBy="modifiedDate")
    assert [c["id"] for c in listed["data"]] == [ids[1], ids[0]]
    by_name = peers.api_get("/customers", orderBy="name", orderDirection="Desc")["data"]
    assert [c["name"] for c in by_name] == ["Cường", "Bình", "An"]


def test_orders_filtered_by_branch_status_and_time_and_ordered(peers: Peers) -> None:
    first, second, third = place(peers, "a"), place(peers, "b", branch=12), place(peers, "c")
    peers.control("POST", f"/orders/{third['id']}/status", {"status": 3}, deliver=0)
    assert [o["id"] for o in peers.api_get("/orders", branchIds=11)["data"]] == [first["id"], third["id"]]
    assert [o["id"] for o in peers.api_get("/orders", status="3")["data"]] == [third["id"]]
    assert [o["id"] for o in peers.api_get("/orders", status="1,3", branchIds="12")["data"]] == [second["id"]]
    peers.retailer.orders[first["id"]]["modifiedDate"] = "2030-01-01T00:00:00.0000000+07:00"
    assert [o["id"] for o in peers.api_get("/orders", lastModifiedFrom="2030-01-01T00:00:00+07:00")["data"]] == [
        first["id"]]  # fmt: skip
    newest = peers.api_get("/orders", orderBy="modifiedDate", orderDirection="Desc")["data"]
    assert newest[0]["id"] == first["id"]
    codes = [o["code"] for o in peers.api_get("/orders", orderBy="code", orderDirection="Desc")["data"]]
    assert codes == sorted(codes, reverse=True)


@responses.activate
def test_a_copied_order_is_a_new_draft_with_the_same_description(peers: Peers) -> None:
    received = receiving(responses.mock)
    peers.hook("order.update")
    original = place(peers, "Abaha DH98765 [abaha:98765]")
    peers.control("POST", f"/orders/{original['id']}/status", {"status": 3}, deliver=0)
    answer = peers.control("POST", f"/orders/{original['id']}/copy").get_json()
    copy = answer["order"]
    assert copy["id"] != original["id"] and copy["code"] != original["code"]
    assert (copy["description"], copy["status"], copy["branchId"]) == ("Abaha DH98765 [abaha:98765]", 1, 11)
    (envelope,) = received.envelopes()
    assert envelope["Notifications"][0]["Data"][0]["Id"] == copy["id"]
    matching = [o for o in peers.api_get("/orders")["data"] if "[abaha:98765]" in o["description"]]
    assert len(matching) == 2


def test_an_orders_description_is_edited_by_hand(peers: Peers) -> None:
    made = place(peers, "Abaha DH1 [abaha:1]")
    held = peers.control("POST", f"/orders/{made['id']}", {"description": "khách gọi lại"}, deliver=0).get_json()
    assert held["delivery"]["body"]["Notifications"][0]["Data"][0]["Description"] == "khách gọi lại"
    assert peers.api_get(f"/orders/{made['id']}")["description"] == "khách gọi lại"
    assert peers.control("POST", "/orders/424242", {"description": "x"}).status_code == 404


def test_unknown_entities_answer_kiotviets_404(peers: Peers) -> None:
    for path in ("/orders/424242", "/customers/424242", "/products/424242", "/categories/424242"):
        answer = peers.api("GET", path)
        assert answer.status_code == 404 and answer.get_json()["responseStatus"]["errorCode"] == "NotFound", path


def test_every_call_is_logged_per_retailer_with_its_status(peers: Peers) -> None:
    peers.api_get("/products", pageSize=100)
    peers.api_get("/products/3001")
    peers.api("GET", "/products/424242")
    add_customer(peers, name="An")
    calls = peers.control("GET", "/calls", method="GET", path_contains="/products").get_json()
    assert [(c["path"], c["status"]) for c in calls["calls"]] == [
        ("/kiotviet/products", 200), ("/kiotviet/products/3001", 200), ("/kiotviet/products/424242", 404)]  # fmt: skip
    assert calls["calls"][0]["query"] == "pageSize=100"
    everything = peers.control("GET", "/calls").get_json()
    assert [c["method"] for c in everything["calls"]] == ["POST", "GET", "GET", "GET", "POST"]  # the token first
    assert everything["get_requests"] == peers.retailer.get_requests == 3
    peers.control("DELETE", "/calls")
    assert peers.control("GET", "/calls").get_json()["total"] == 0
