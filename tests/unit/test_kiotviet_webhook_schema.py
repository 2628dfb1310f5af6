from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from schemas.events import EventSchema, plain_json, to_micros
from schemas.kiotviet import StockSchema, lower_keys, parse_kiotviet_datetime
from schemas.kiotviet_webhook import (
    WEBHOOK_TYPES,
    DeliveryRejected,
    Normalized,
    normalize_delivery,
    plain_stock_item,
    webhook_type,
)
from tests.helpers import sample

RECEIVED = "2026-11-30T08:00:00.000000+00:00"

# fixture name → (type, entity ids it carries)
EXPECTED = {
    "product.update": ("product.update", ["3001"]),
    "product.delete": ("product.delete", ["3002"]),
    "stock.update": ("stock.update", ["3001:11"]),
    "order.update.completed": ("order.update", ["88001"]),
    "invoice.update": ("invoice.update", ["99001"]),
    "customer.update": ("customer.update", ["7001"]),
    "customer.delete": ("customer.delete", ["7002"]),
    "pricebook.update": ("pricebook.update", ["201"]),
    "pricebook.delete": ("pricebook.delete", ["202"]),
    "pricebookdetail.update": ("pricebookdetail.update", ["201:3001"]),
    "pricebookdetail.delete": ("pricebookdetail.delete", ["201:3001", "201:3002"]),
    "category.update": ("category.update", ["101"]),
    "category.delete": ("category.delete", ["102", "103"]),
    "branch.update": ("branch.update", ["11"]),
    "branch.delete": ("branch.delete", ["12"]),
}


def normalize(body: dict[str, Any], shop_id: str = "shop-42") -> Normalized:
    raw = json.dumps(body).encode()
    return normalize_delivery(raw, body, shop_id, RECEIVED)


def test_fixtures_cover_all_fifteen_webhook_types() -> None:
    assert sorted(kind for kind, _ in EXPECTED.values()) == sorted(WEBHOOK_TYPES)


@pytest.mark.parametrize("fixture", sorted(EXPECTED))
def test_every_webhook_type_is_normalized_from_a_realistic_body(fixture: str) -> None:
    kind, entity_ids = EXPECTED[fixture]
    result = normalize(sample(f"kiotviet/{fixture}"))
    assert result.problems == []
    assert [e.type for e in result.events] == [kind] * len(entity_ids)
    assert [e.entity_id for e in result.events] == entity_ids
    for event in result.events:
        # the job argument is plain JSON and loads back into the same event
        assert EventSchema().load(json.loads(json.dumps(event.to_json()))) == event


def test_product_fields_are_read_whatever_their_case() -> None:
    (event,) = normalize(sample("kiotviet/product.update")).events
    data = event.data
    assert data["code"] == "SP000123"
    assert data["is_active"] is True  # sent as lower-camel `isActive`
    assert data["allows_sale"] is True
    assert data["base_price"] == 150000
    assert [(i["branch_id"], i["on_hand"], i["reserved"]) for i in data["inventories"]] == [(11, 15, 2), (12, 4, 0)]
    assert data["attributes"][0] == {"name": "MÀU SẮC", "value": "Trắng"}
    assert "__type" not in json.dumps(data)


def test_version_is_the_modified_date_with_seven_fraction_digits() -> None:
    (event,) = normalize(sample("kiotviet/product.update")).events
    assert to_micros(event.version) == to_micros("2026-11-30T10:20:30.147000+07:00")


def test_naive_dates_are_vietnam_time() -> None:
    assert parse_kiotviet_datetime("1990-05-12T00:00:00.0000000").isoformat() == "1990-05-12T00:00:00+07:00"


def test_events_without_a_modified_date_take_the_receive_time() -> None:
    (event,) = normalize(sample("kiotviet/stock.update")).events
    assert event.version == RECEIVED


def test_same_delivery_gives_the_same_event_ids_and_another_delivery_other_ids() -> None:
    body = sample("kiotviet/stock.update")
    first = [e.id for e in normalize(body).events]
    again = [e.id for e in normalize(json.loads(json.dumps({**body, "Attempt": 2}))).events]
    other = [e.id for e in normalize({**body, "Id": "another-delivery"}).events]
    assert first == again
    assert first != other


def test_event_ids_differ_between_shops() -> None:
    body = sample("kiotviet/stock.update")
    assert normalize(body, "a").events[0].id != normalize(body, "b").events[0].id


@pytest.mark.parametrize(
    "action, expected",
    [("product.update.500400541", "product.update"), ("PRODUCT.UPDATE", "product.update"),
     ("Stock.Update.1", "stock.update"), ("product.explode.1", None), (None, None), (42, None)],
)  # fmt: skip
def test_action_is_read_case_insensitively_without_its_retailer_suffix(action: object, expected: str | None) -> None:
    assert webhook_type(action) == expected


def test_delete_ids_are_read_bare_at_the_top_level() -> None:
    result = normalize(sample("kiotviet/product.delete.bare"))
    assert [(e.type, e.entity_id) for e in result.events] == [("product.delete", "3003")]


def test_delete_ids_are_read_from_a_single_object_or_plain_ids() -> None:
    single = {"Id": "d1", "Notifications": [{"Action": "product.delete", "Data": {"RemoveId": 5}}]}
    plain = {"Id": "d2", "Notifications": [{"Action": "category.delete", "Data": [7, 8]}]}
    assert [e.entity_id for e in normalize(single).events] == ["5"]
    assert [e.entity_id for e in normalize(plain).events] == ["7", "8"]


def test_unknown_action_is_reported_while_the_known_ones_pass() -> None:
    body = sample("kiotviet/stock.update")
    body["Notifications"].append({"Action": "coupon.update.1", "Data": [{"Id": 1}]})
    result = normalize(body)
    assert len(result.events) == 1
    assert result.problems == ["unknown action 'coupon.update.1'"]


def test_an_item_without_its_id_is_reported_not_guessed() -> None:
    body = {"Id": "x", "Notifications": [{"Action": "product.update", "Data": [{"Code": "SP1"}, {"Id": 9}]}]}
    result = normalize(body)
    assert [e.entity_id for e in result.events] == ["9"]
    assert result.problems and "product.update item 0" in result.problems[0]


@pytest.mark.parametrize(
    "body, reason",
    [([1, 2], "not a JSON object"), ({"Id": "x"}, "no Notifications"),
     ({"Id": "x", "Notifications": []}, "no notifications"),
     ({"Id": "x", "Notifications": [{"Action": "nope", "Data": []}]}, "unknown action")],
)  # fmt: skip
def test_unusable_deliveries_are_rejected_with_a_reason(body: object, reason: str) -> None:
    with pytest.raises(DeliveryRejected, match=reason):
        normalize_delivery(b"{}", body, "shop", RECEIVED)


def test_odd_items_become_problems_and_the_others_still_go() -> None:
    body = {"Id": "odd", "Notifications": [
        {"Action": "product.delete", "Data": [{"ProductId": 5}, {"RemoveId": [6]}]},
        {"Action": "product.update", "Data": [{"Id": 7, "BasePrice": 1e999}, {"Id": 8, "BasePrice": 1}]},
        {"Action": "stock.update", "Data": [{"ProductId": 9, "BranchId": 11, "OnHand": float("nan")}]},
    ]}  # fmt: skip
    result = normalize_delivery(b"", body, "shop", RECEIVED)
    assert [(e.type, e.entity_id) for e in result.events] == [("product.delete", "6"), ("product.update", "8")]
    assert len(result.problems) == 3


# stock.update items as KiotViet sends them, and every odd value the schema must judge instead
ODD_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**60), 2**60), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6), st.sampled_from(["12", "2026-11-30T08:00:00", 2**70, -0.0]),
    st.lists(st.integers(), max_size=2),
)  # fmt: skip
NUMBERS = st.one_of(st.integers(-(2**60), 2**60), st.floats(allow_nan=True, allow_infinity=True), ODD_VALUES)
STOCK_ITEMS = st.fixed_dictionaries(
    {"ProductId": st.one_of(st.integers(1, 2**40), ODD_VALUES), "BranchId": st.integers(1, 99)},
    optional={"OnHand": NUMBERS, "Reserved": NUMBERS, "ProductCode": st.one_of(st.text(max_size=8), ODD_VALUES),
              "ModifiedDate": ODD_VALUES, "__type": st.just("Stock"), "Other": ODD_VALUES},
).flatmap(lambda item: st.dictionaries(st.sampled_from(["productid", "onhand", "Id", "BRANCHID"]), ODD_VALUES,
                                       max_size=1).map(lambda extra: {**item, **extra}))  # fmt: skip


def schema_stock_item(item: Any) -> dict[str, Any] | None:
    """What the marshmallow schema makes of a stock item (None: it refuses it)."""
    try:
        return plain_json(StockSchema().load(lower_keys(item)))  # type: ignore[no-any-return]
    except (ValidationError, ValueError, TypeError, OverflowError):
        return None


@settings(max_examples=300, deadline=None)
@given(STOCK_ITEMS)
def test_plain_stock_items_are_read_as_the_schema_reads_them(item: dict[str, Any]) -> None:
    quick = plain_stock_item(item)
    if quick is not None:  # the same, to the JSON it becomes (5.0, not 5)
        assert json.dumps(quick) == json.dumps(schema_stock_item(item))


def test_the_stock_items_kiotviet_sends_are_read_without_the_schema() -> None:
    items = [{"ProductId": 3001, "BranchId": 11, "OnHand": 5, "Reserved": 2},
             {"productId": 3002, "branchId": 11, "onHand": 7.5, "reserved": None, "productCode": "SP2"},
             {"ProductId": 3003, "BranchId": 12, "OnHand": -0.0, "ModifiedDate": None, "__type": "Stock"}]  # fmt: skip
    for item in items:
        assert plain_stock_item(item) is not None
        assert json.dumps(plain_stock_item(item)) == json.dumps(schema_stock_item(item))
    event = normalize({"Id": "d1", "Notifications": [{"Action": "stock.update", "Data": items}]}).events[1]
    assert (event.entity_id, event.data["on_hand"], event.data["reserved"]) == ("3002:11", 7.5, 0.0)
    # a dated item, a text id: the schema's to judge
    assert plain_stock_item({"ProductId": 1, "BranchId": 11, "ModifiedDate": "2026-11-30T08:00:00"}) is None
    assert plain_stock_item({"ProductId": "1", "BranchId": 11}) is None
