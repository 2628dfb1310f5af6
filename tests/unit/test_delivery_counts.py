"""Deliveries are counted by the script that accepts their events (no round trip of their own):
as received under each type, and as a duplicate only when every event in them was accepted
before, also when a big delivery takes several scripts."""

from __future__ import annotations

import base64
import json

import pytest
from flask.testing import FlaskClient

from adapters.pending import CHUNK
from tests.conftest import BRANCH, SHOP
from tests.helpers import connect_signed, sample, sign
from wiring import Services

SECRET = base64.b64encode(b"the shop's webhook secret").decode()
ITEMS = CHUNK * 2 + 50  # three scripts


@pytest.fixture(autouse=True)
def connected(services: Services) -> None:
    connect_signed(services, SHOP, BRANCH, SECRET)


def stock_body(delivery_id: str, products: list[int]) -> bytes:
    data = [{"ProductId": p, "BranchId": BRANCH, "OnHand": 5, "Reserved": 0} for p in products]
    body = {"Id": delivery_id, "Attempt": 1, "Notifications": [{"Action": "stock.update.500123456", "Data": data}]}
    return json.dumps(body).encode()


def post(client: FlaskClient, body: bytes) -> dict[str, int]:
    answer = client.post(f"/webhooks/kiotviet/{SHOP}", data=body, headers={"X-Hub-Signature": sign(body, SECRET)})
    assert answer.status_code == 200
    found: dict[str, int] = answer.get_json()
    return found


def counts(services: Services) -> dict[tuple[str, str, str], int]:
    return services.state.delivery_counts()


def test_a_big_delivery_sent_twice_is_received_twice_and_one_duplicate(client: FlaskClient, services: Services) -> None:
    body = stock_body("big", list(range(5000, 5000 + ITEMS)))
    assert post(client, body)["new"] == ITEMS
    assert post(client, body)["new"] == 0
    assert counts(services) == {("kiotviet", "stock.update", "received"): 2,
                                ("kiotviet", "stock.update", "duplicate"): 1}  # fmt: skip


@pytest.mark.parametrize("changed", [0, ITEMS - 1], ids=["in-its-first-script", "in-its-last-script"])
def test_a_resend_with_one_event_not_seen_before_is_no_duplicate(
    client: FlaskClient, services: Services, changed: int
) -> None:  # fmt: skip
    products = list(range(5000, 5000 + ITEMS))
    post(client, stock_body("big", products))
    products[changed] = 9999  # another item at that place: an event id not seen before
    assert post(client, stock_body("big", products))["new"] == 1
    assert counts(services) == {("kiotviet", "stock.update", "received"): 2}


def test_a_delivery_of_types_not_synced_is_received_and_never_a_duplicate(
    client: FlaskClient, services: Services
) -> None:  # fmt: skip
    body = json.dumps(sample("kiotviet/invoice.update")).encode()
    post(client, body)
    post(client, body)
    assert counts(services) == {("kiotviet", "invoice.update", "received"): 2}


def test_an_abaha_event_sent_twice_is_received_twice_and_one_duplicate(
    client: FlaskClient, services: Services
) -> None:  # fmt: skip
    headers = {"X-Abaha-Token": "abaha-webhook-token"}
    for _ in range(2):
        assert (
            client.post(f"/webhooks/abaha/{SHOP}", json=sample("abaha/order.created"), headers=headers).status_code
            == 202
        )
    assert counts(services) == {("abaha", "order.created", "received"): 2, ("abaha", "order.created", "duplicate"): 1}
