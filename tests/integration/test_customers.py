"""Customers both ways: matched by phone, linked, our own echoes dropped, real edits passed."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import requests

from sandbox.abaha_sales import post_event
from tests.helpers import wait_for
from tests.integration.conftest import Shop

pytestmark = pytest.mark.integration
_customer_ids = itertools.count(5001)


def edit_on_abaha(shop: Shop, customer_id: int, **fields: Any) -> None:
    url = f"{shop.sandbox_url}/_sandbox/abaha/shops/{shop.shop_id}/customers/{customer_id}"
    assert requests.post(url, json=fields, timeout=10).json()["delivered"] == 202


def edit_in_kiotviet(shop: Shop, kv_id: int, **fields: Any) -> None:
    url = f"{shop.sandbox_url}/_sandbox/kiotviet/{shop.retailer.name}/customers/{kv_id}"
    assert requests.post(url, json=fields, timeout=10).json()["delivered"][0]["status"] == 200


def kiotviet_by_phone(shop: Shop, phone: str) -> list[dict[str, Any]]:
    return [c for c in shop.retailer.customers.values() if c.get("contactNumber") == phone]


def quiet(shop: Shop) -> bool:
    """Nothing of the shop's is waiting to be applied (its echoes came back and were handled)."""
    return bool(shop.stack.admin("GET", f"/admin/connections/{shop.shop_id}").json()["state"]["pending"] == 0)


def test_an_abaha_customer_is_created_in_kiotviet_and_linked(shop: Shop) -> None:
    customer_id = next(_customer_ids)
    edit_on_abaha(shop, customer_id, name="Trần Thị Bình", phone="0987654321", email="binh@example.vn",
                  gender="female", birth_date="1995-02-20", address="45 Nguyễn Trãi")  # fmt: skip
    made = wait_for(lambda: kiotviet_by_phone(shop, "0987654321"))
    assert (made[0]["name"], made[0]["gender"], made[0]["birthDate"]) == ("Trần Thị Bình", False, "1995-02-20")
    wait_for(lambda: shop.abaha.customers[str(customer_id)].get("kv_id") == made[0]["id"])


def test_a_phone_known_in_kiotviet_is_matched_not_duplicated(shop: Shop) -> None:
    edit_in_kiotviet(shop, 7101, name="Lê Văn Cường", contactNumber="0901000111")
    wait_for(lambda: any(c.get("kv_id") == 7101 for c in shop.abaha.customers.values()))
    customer_id = next(_customer_ids)
    edit_on_abaha(shop, customer_id, name="Lê Văn Cường", phone="0901000111", email="cuong@example.vn")
    wait_for(lambda: shop.retailer.customers[7101].get("email") == "cuong@example.vn")
    assert len(kiotviet_by_phone(shop, "0901000111")) == 1


def test_our_own_writes_echo_back_and_are_dropped_while_real_edits_pass(shop: Shop) -> None:
    customer_id = next(_customer_ids)
    edit_on_abaha(shop, customer_id, name="Phạm Thu Hà", phone="0911222333", address="1 Hàng Bạc")
    made = wait_for(lambda: kiotviet_by_phone(shop, "0911222333"))
    kv_id = made[0]["id"]
    wait_for(lambda: shop.counts()["echo"] >= 1)  # KiotViet told us of the customer we created
    edit_in_kiotviet(shop, kv_id, address="99 Hàng Bạc")  # a real edit in KiotViet
    wait_for(lambda: shop.abaha.customers[str(customer_id)]["address"] == "99 Hàng Bạc")
    edit_on_abaha(shop, customer_id, email="ha@example.vn")  # a real edit on Abaha
    wait_for(lambda: shop.retailer.customers[kv_id].get("email") == "ha@example.vn")
    # each write came back as an echo (or was folded into the next real edit of the same side
    # before it was applied): none of them was written back again
    wait_for(lambda: shop.counts()["echo"] >= 2 and quiet(shop))
    writes = [w for w in shop.abaha.writes if w.startswith("PUT /customers/")]
    assert len(writes) == 2  # the link, the KiotViet edit (the account edited on Abaha carries the link already)
    assert shop.counts()["failed"] == 0


def test_the_newer_change_wins_a_conflict(shop: Shop) -> None:
    edit_in_kiotviet(shop, 7201, name="Đỗ Minh", contactNumber="0933444555")
    wait_for(lambda: any(c.get("kv_id") == 7201 for c in shop.abaha.customers.values()))
    wait_for(lambda: shop.counts()["echo"] >= 1 and quiet(shop))  # Abaha told us of the customer we made
    abaha_id = next(int(i) for i, c in shop.abaha.customers.items() if c.get("kv_id") == 7201)
    stale = {"name": "Đỗ Minh (cũ)", "phone": "0933444555", "updated_at": "2020-01-01T00:00:00+07:00"}
    assert post_event(shop.shop_id, shop.abaha, "customer.updated", {"id": abaha_id, "kv_id": 7201, **stale}) == 202
    wait_for(lambda: shop.counts()["stale"] >= 1)
    assert shop.retailer.customers[7201]["name"] == "Đỗ Minh"
