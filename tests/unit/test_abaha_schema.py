from __future__ import annotations

from typing import Any

import pytest

from schemas.abaha import AbahaEventInvalid, AbahaOrder, normalize_event
from tests.helpers import sample

RECEIVED = "2026-11-30T03:15:01.000000+00:00"


def test_an_order_event_is_normalized_with_its_fees() -> None:
    event = normalize_event(sample("abaha/order.created"), "shop-42", RECEIVED)
    assert event is not None
    assert (event.source, event.type, event.entity_id) == ("abaha", "order.created", "98765")
    assert event.version == "2026-11-30T10:14:58+07:00"
    order = AbahaOrder.from_json(event.data)
    assert order.fees == 40000
    assert order.shipping_address is not None and order.shipping_address.name == "Nguyễn Văn An"


def test_the_same_event_id_gives_the_same_event_id_per_shop() -> None:
    body = sample("abaha/customer.created")
    first = normalize_event(body, "shop-42", RECEIVED)
    again = normalize_event(body, "shop-42", "2026-11-30T05:00:00+00:00")
    assert first is not None and again is not None and first.id == again.id


def test_types_the_service_does_not_handle_are_ignored() -> None:
    body = {**sample("abaha/customer.created"), "type": "product.updated"}
    assert normalize_event(body, "shop-42", RECEIVED) is None


@pytest.mark.parametrize(
    "change, message",
    [({"shop_id": "shop-7"}, "not this endpoint's shop"), ({"occurred_at": "yesterday"}, "occurred_at"),
     ({"data": {"id": 1}}, "data.code"), ({"id": ""}, "id")],
)  # fmt: skip
def test_malformed_events_are_refused_with_the_field_named(change: dict[str, Any], message: str) -> None:
    with pytest.raises(AbahaEventInvalid, match=message):
        normalize_event({**sample("abaha/order.created"), **change}, "shop-42", RECEIVED)


def test_negative_money_is_refused() -> None:
    body = sample("abaha/order.created")
    body["data"]["items"][0]["unit_price"] = -1
    with pytest.raises(AbahaEventInvalid, match="unit_price"):
        normalize_event(body, "shop-42", RECEIVED)
