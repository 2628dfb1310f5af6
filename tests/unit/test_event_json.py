"""An event's JSON form is what `dataclasses.asdict` gave, without its deep copy."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from schemas.events import Event, plain_json
from schemas.kiotviet_webhook import normalize_delivery
from tests.helpers import sample

RECEIVED = "2026-11-30T08:00:00.000000+00:00"
FIXTURES = ["product.update", "product.update.unit", "product.update.variant", "stock.update",
            "order.update.completed", "customer.update", "pricebook.update", "pricebookdetail.update",
            "category.update", "branch.update"]  # fmt: skip


@pytest.mark.parametrize("name", FIXTURES)
def test_every_normalized_event_serializes_as_asdict_did(name: str) -> None:
    body = sample(f"kiotviet/{name}")
    raw = json.dumps(body).encode()
    events = normalize_delivery(raw, body, "shop-1", RECEIVED).events
    assert events
    for event in events:
        assert event.to_json() == plain_json(asdict(event))
        assert json.loads(json.dumps(event.to_json())) == event.to_json()


def test_the_json_form_shares_no_container_with_the_event() -> None:
    event = Event("e1", "kiotviet", "stock.update", "shop-1", "3001:11", "", RECEIVED,
                  {"inventories": [{"branch_id": 11, "on_hand": 5}]})  # fmt: skip
    form = event.to_json()
    form["data"]["inventories"][0]["on_hand"] = 99
    assert event.data["inventories"][0]["on_hand"] == 5
