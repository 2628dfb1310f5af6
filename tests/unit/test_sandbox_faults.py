"""Faults injected into either simulated peer: refusals with Retry-After, failures after the work
was done, slow answers, seeded random chaos; never on the control routes."""

from __future__ import annotations

import time
from typing import Any

import pytest
from werkzeug.test import TestResponse

from sandbox.abaha import Fault
from tests.unit.sandbox_support import Peers

PRODUCT = {"sku": "SP1", "name": "Áo"}


@pytest.fixture
def peers() -> Peers:
    return Peers.start()


def fault(peers: Peers, peer: str, **spec: Any) -> TestResponse:
    return peers.client.post(f"/_sandbox/{peer}/faults", json=spec)


def kiotviet_products(peers: Peers) -> int:
    return peers.api("GET", "/products").status_code


def abaha_put(peers: Peers, kv_id: int = 1) -> int:
    return peers.abaha("PUT", f"/products/{kv_id}", PRODUCT).status_code


def test_a_kiotviet_fault_answers_its_status_count_times_in_kiotviets_shape(peers: Peers) -> None:
    fault(peers, "kiotviet", status=429, count=2, path_contains="/products", retry_after=7)
    answer = peers.api("GET", "/products")
    assert (answer.status_code, answer.headers["Retry-After"]) == (429, "7")
    assert answer.get_json()["responseStatus"]["errorCode"] == "TooManyRequests"
    assert [kiotviet_products(peers), kiotviet_products(peers)] == [429, 200]
    assert peers.api("GET", "/branches").status_code == 200  # another path


def test_an_abaha_fault_keeps_its_old_shape_and_body(peers: Peers) -> None:
    assert fault(peers, "abaha", status=503, count=1, path_contains="/products/", retry_after=3).status_code == 200
    answer = peers.abaha("PUT", "/products/1", PRODUCT)
    assert (answer.status_code, answer.headers["Retry-After"]) == (503, "3")
    assert answer.get_json() == {"error": {"code": "injected", "message": "sandbox fault"}}
    assert abaha_put(peers) == 201


def test_a_fault_object_appended_by_a_test_is_spent(peers: Peers) -> None:
    injected = Fault(status=503, count=2, path_contains="/shops/shop-1/categories/")
    peers.ab.faults.append(injected)
    statuses = [peers.abaha("PUT", "/categories/5", {"name": "Quần"}).status_code for _ in range(3)]
    assert statuses == [503, 503, 201] and injected.count == 0


def test_a_fault_limited_to_a_method_spares_the_others(peers: Peers) -> None:
    fault(peers, "abaha", status=500, count=5, method="PATCH")
    assert abaha_put(peers) == 201
    assert peers.abaha("PATCH", "/products/1", {"stock": 3}).status_code == 500


@pytest.mark.parametrize("peer, control", [("kiotviet", "/_sandbox/kiotviet/demo/webhooks"),
                                           ("abaha", "/_sandbox/abaha/shops/shop-1")])  # fmt: skip
def test_control_routes_are_never_faulted(peers: Peers, peer: str, control: str) -> None:
    fault(peers, peer, status=500, count=-1)
    assert peers.client.get(control).status_code == 200
    assert (kiotviet_products(peers) if peer == "kiotviet" else abaha_put(peers)) == 500


def test_the_token_endpoint_can_be_faulted(peers: Peers) -> None:
    fault(peers, "kiotviet", status=503, count=1, path_contains="/connect/token")
    answer = peers.client.post("/kiotviet-id/connect/token", data={"client_id": "demo-client"})
    assert answer.status_code == 503


def test_after_write_does_the_work_then_answers_the_failure(peers: Peers) -> None:
    fault(peers, "kiotviet", status=524, count=1, path_contains="/orders", after_write=True)
    body = {"branchId": 11, "orderDetails": [{"productId": 3001, "productCode": "SP000123", "quantity": 1,
                                              "price": 150000}]}  # fmt: skip
    assert peers.api("POST", "/orders", json=body).status_code == 524
    assert len(peers.retailer.orders) == 1  # made, though the caller was told it failed
    fault(peers, "abaha", status=502, count=1, path_contains="/products/9", after_write=True)
    assert abaha_put(peers, 9) == 502 and peers.shop.products["9"] == PRODUCT


def test_a_delay_answers_late_with_the_fault_or_with_the_real_answer(peers: Peers) -> None:
    fault(peers, "abaha", status=503, count=1, delay=0.3)
    fault(peers, "abaha", count=1, delay=0.3)  # no status: the real answer, late
    started = time.monotonic()
    assert [abaha_put(peers), abaha_put(peers)] == [503, 201]
    assert time.monotonic() - started >= 0.6
    started = time.monotonic()
    assert abaha_put(peers) == 200
    assert time.monotonic() - started < 0.3


def hits(seed: int, count: int = -1) -> list[int]:
    peers = Peers.start()
    fault(peers, "kiotviet", status=503, count=count, probability=0.5, seed=seed, path_contains="/branches")
    return [peers.api("GET", "/branches").status_code for _ in range(30)]


def test_a_random_fault_is_reproducible_from_its_seed_and_bounded_by_its_count() -> None:
    first, again, other = hits(seed=7), hits(seed=7), hits(seed=8)
    assert first == again != other
    assert 0 < first.count(503) < 30
    assert hits(seed=7, count=3).count(503) == 3


def test_clearing_faults_removes_them_all(peers: Peers) -> None:
    fault(peers, "kiotviet", status=500, count=-1)
    fault(peers, "abaha", status=500, count=-1)
    assert peers.client.get("/_sandbox/kiotviet/faults").get_json()["faults"][0]["status"] == 500
    assert peers.client.delete("/_sandbox/kiotviet/faults").get_json()["cleared"] == 1
    assert peers.client.delete("/_sandbox/abaha/faults").get_json()["cleared"] == 1
    assert (kiotviet_products(peers), abaha_put(peers)) == (200, 201)


@pytest.mark.parametrize("spec", [{"status": 99}, {"count": -2}, {"probability": 1.5}, {"delay": -1}, []])
def test_a_malformed_fault_is_refused(peers: Peers, spec: Any) -> None:
    assert peers.client.post("/_sandbox/kiotviet/faults", json=spec).status_code == 400
    assert peers.kv.faults == []


def test_a_faulted_call_is_logged_with_the_status_it_got(peers: Peers) -> None:
    fault(peers, "kiotviet", status=429, count=1, path_contains="/products")
    kiotviet_products(peers)
    kiotviet_products(peers)
    calls = peers.control("GET", "/calls", path_contains="/products").get_json()["calls"]
    assert [c["status"] for c in calls] == [429, 200]
    assert peers.retailer.get_requests == 1  # the refused one never reached the API
