"""Abaha orders become exactly one KiotViet order; KiotViet's status comes back."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from adapters import keys
from adapters.errors import KiotVietRejected, Throttled, TransientError
from adapters.kiotviet_errors import translate
from schemas.abaha import AbahaOrder, normalize_event
from schemas.events import Event, Outcome
from tests.conftest import SHOP
from tests.fakes import FakeAbaha, FakeKiotViet, stamp
from tests.helpers import sample
from workers.context import ShopContext
from workers.orders import (
    ADOPT_PATIENCE_SECONDS,
    ADOPT_SEARCHES,
    SETTLE_SECONDS,
    OrderRefused,
    apply_abaha_order,
    apply_kiotviet_order,
    explain_refusal,
    kiotviet_order_body,
    marker_of,
)

ORDER_ID = 98765


@pytest.fixture(autouse=True)
def catalogue(kiotviet: FakeKiotViet) -> None:
    kiotviet.add_product(3001, code="SP000123", basePrice=150000)
    kiotviet.add_product(3002, code="SP000124", basePrice=250000)
    kiotviet.customers[7001] = {"id": 7001, "code": "KH1", "name": "An", "contactNumber": "0912345678",
                                "modifiedDate": stamp()}  # fmt: skip


def order_event(**changes: Any) -> Event:
    body = sample("abaha/order.created")
    body["data"].update(changes)
    event = normalize_event(body, SHOP, "2026-11-30T03:15:01+00:00")
    assert event is not None
    return event


def made_in_kiotviet(kiotviet: FakeKiotViet, order_id: int = ORDER_ID) -> list[dict[str, Any]]:
    return [o for o in kiotviet.orders.values() if f"[abaha:{order_id}]" in (o.get("description") or "")]


def intent_since(ctx: ShopContext, seconds_ago: float, searches: int = 0) -> None:
    ctx.memo.clear()  # each attempt is a batch of its own
    since = (datetime.now(UTC) - timedelta(seconds=seconds_ago)).isoformat()
    record = {"state": "intent", "since": since, "searches": searches}
    ctx.pending._redis.hset(keys.shop_key(SHOP, keys.LINKS, "orders"), str(ORDER_ID), json.dumps(record))  # type: ignore[attr-defined]


def test_the_kiotviet_order_totals_what_the_abaha_order_totals(ctx: ShopContext) -> None:
    items = [{"sku": "SP000123", "kv_product_id": 3001, "quantity": 3, "unit_price": 99000, "discount": 10000},
             {"sku": "SP000124", "quantity": 1, "unit_price": 250000}]  # fmt: skip
    fees = [{"name": "COD", "amount": 10000}, {"name": "Gói quà", "amount": 5000}]
    event = order_event(items=items, discount=15000, shipping_fee=30000, other_fees=fees)
    body = kiotviet_order_body(AbahaOrder.from_json(event.data), ctx)
    assert [(d["productId"], d["discount"]) for d in body["orderDetails"]] == [(3001, 3333), (3002, 0)]
    assert body["discount"] == 15000 + 1  # 10000 = 3 × 3333 + 1
    assert body["surchages"] == [{"id": 1, "code": "THK000001", "price": 45000}]
    assert body["customer"] == {"id": 7001}
    assert "[abaha:98765]" in body["description"] and "DH98765" in body["description"]
    lines = sum(d["quantity"] * (d["price"] - d["discount"]) for d in body["orderDetails"])
    assert lines - body["discount"] + 45000 == 3 * 99000 - 10000 + 250000 - 15000 + 45000
    assert None not in body["orderDelivery"].values()


def test_a_replayed_order_is_not_created_twice(ctx: ShopContext, kiotviet: FakeKiotViet, abaha: FakeAbaha) -> None:
    event = order_event()
    assert apply_abaha_order(event, ctx) == Outcome.APPLIED
    assert apply_abaha_order(event, ctx) == Outcome.IGNORED
    (made,) = made_in_kiotviet(kiotviet)
    assert abaha.order_links == {ORDER_ID: (made["id"], made["code"])}


def test_a_refused_order_leaves_no_intent_so_a_replay_creates_it(ctx: ShopContext, kiotviet: FakeKiotViet) -> None:
    kiotviet.refuse_orders = "Không đủ số lượng tồn kho cho sản phẩm SP000123"
    with pytest.raises(OrderRefused, match="Cho phép đặt hàng khi hết tồn kho"):
        apply_abaha_order(order_event(), ctx)
    assert ctx.links.order_record(SHOP, ORDER_ID) is None
    kiotviet.refuse_orders = None
    assert apply_abaha_order(order_event(), ctx) == Outcome.APPLIED
    assert len(made_in_kiotviet(kiotviet)) == 1


def test_a_throttled_order_was_not_made_so_its_retry_makes_it_at_once(ctx: ShopContext, kiotviet: FakeKiotViet) -> None:
    answer = requests.Response()
    answer.status_code, answer._content = 429, b'{"message": "Too many requests"}'
    with pytest.raises(Throttled) as throttled:  # what the adapter makes of KiotViet's 429
        translate("POST", "/orders", answer)
    kiotviet.fail_next("create_order", throttled.value)
    with pytest.raises(TransientError, match="throttling"):
        apply_abaha_order(order_event(), ctx)
    assert ctx.links.order_record(SHOP, ORDER_ID) is None  # no intent: no adoption wait
    assert apply_abaha_order(order_event(), ctx) == Outcome.APPLIED
    assert len(made_in_kiotviet(kiotviet)) == 1


@pytest.mark.parametrize("status", [501, 505, 507, 520, 524])
def test_an_unusual_5xx_after_the_order_was_made_keeps_the_intent_and_ends_in_adoption(
    ctx: ShopContext, kiotviet: FakeKiotViet, status: int
) -> None:
    real = kiotviet.create_order

    def made_then_failed(body: dict[str, Any]) -> Any:
        real(body)  # the origin did the work; the answer is lost
        raise TransientError(f"KiotViet answered {status} to POST /orders")

    kiotviet.create_order = made_then_failed  # type: ignore[method-assign]
    with pytest.raises(TransientError):
        apply_abaha_order(order_event(), ctx)
    record = ctx.links.order_record(SHOP, ORDER_ID)
    assert record is not None and record["state"] == "intent"  # the replay will not make a second one
    kiotviet.create_order = real  # type: ignore[method-assign]
    intent_since(ctx, 61)
    assert apply_abaha_order(order_event(), ctx) == Outcome.APPLIED
    assert len(made_in_kiotviet(kiotviet)) == 1


def test_an_order_kiotviet_finishes_late_is_looked_for_again_before_one_is_made(
    ctx: ShopContext, kiotviet: FakeKiotViet, abaha: FakeAbaha
) -> None:
    for search in range(ADOPT_SEARCHES):  # not there yet, search after search
        intent_since(ctx, 61 + search * 200, searches=search)
        with pytest.raises(TransientError, match="looking again"):
            apply_abaha_order(order_event(), ctx)
    kiotviet.create_order({"description": f"Đơn Abaha DH98765 [abaha:{ORDER_ID}]", "orderDetails": []})  # it lands
    intent_since(ctx, ADOPT_PATIENCE_SECONDS - 10, searches=ADOPT_SEARCHES)
    assert apply_abaha_order(order_event(), ctx) == Outcome.APPLIED
    assert len(made_in_kiotviet(kiotviet)) == 1  # adopted, not made again


def test_an_order_still_not_found_after_the_window_is_made(ctx: ShopContext, kiotviet: FakeKiotViet) -> None:
    intent_since(ctx, ADOPT_PATIENCE_SECONDS + 10, searches=ADOPT_SEARCHES)
    assert apply_abaha_order(order_event(), ctx) == Outcome.APPLIED
    assert len(made_in_kiotviet(kiotviet)) == 1


def test_a_recent_intent_waits_while_its_attempt_may_still_get_an_answer(ctx: ShopContext) -> None:
    intent_since(ctx, 5)
    with pytest.raises(TransientError, match="may still be waiting"):
        apply_abaha_order(order_event(), ctx)


def test_an_unknown_product_code_names_the_code(ctx: ShopContext) -> None:
    event = order_event(items=[{"sku": "NOPE", "quantity": 1, "unit_price": 1}])
    with pytest.raises(OrderRefused, match="product code NOPE"):
        apply_abaha_order(event, ctx)


@pytest.mark.parametrize(
    "said, advice",
    [("Thiết lập “Cho phép đặt hàng” đang không được bật.", "ordering is turned off"),
     ("Thu khác THK000001 không tồn tại", "surcharge code THK000001"), ("Lỗi lạ", "Lỗi lạ")],
)  # fmt: skip
def test_refusals_are_explained(ctx: ShopContext, said: str, advice: str) -> None:
    order = AbahaOrder.from_json(order_event().data)
    assert advice in explain_refusal(KiotVietRejected("x", 400, said), order, ctx)


@pytest.mark.parametrize(
    "text, found", [("Đơn Abaha DH1 [abaha:42] - note", 42), ("Abaha DH98765", None), (None, None)]
)
def test_the_marker_is_read_from_a_description(text: str | None, found: int | None) -> None:
    assert marker_of(text) == found


def kiotviet_status(order_id: int, status: int, description: str) -> Event:
    data = {
        "id": order_id,
        "code": f"DH{order_id}",
        "order_code": None,
        "status": status,
        "status_value": None,
        "branch_id": 11,
        "customer_id": None,
        "total": 1,
        "description": description,
        "modified_date": stamp(),
    }
    return Event(
        id=f"s{order_id}-{status}",
        source="kiotviet",
        type="order.update",
        shop_id=SHOP,
        entity_id=str(order_id),
        version=str(data["modified_date"]),
        received_at=str(data["modified_date"]),
        data=data,
    )


def test_completion_and_cancellation_in_kiotviet_reach_abaha(ctx: ShopContext, kiotviet: FakeKiotViet,
                                                             abaha: FakeAbaha) -> None:  # fmt: skip
    apply_abaha_order(order_event(), ctx)
    (made,) = made_in_kiotviet(kiotviet)
    assert apply_kiotviet_order(kiotviet_status(made["id"], 5, made["description"]), ctx) == Outcome.IGNORED
    assert apply_kiotviet_order(kiotviet_status(made["id"], 3, made["description"]), ctx) == Outcome.APPLIED
    assert abaha.statuses == {ORDER_ID: "completed"}


def test_a_copy_of_our_order_made_by_hand_does_not_move_the_original(
    ctx: ShopContext, kiotviet: FakeKiotViet, abaha: FakeAbaha
) -> None:
    apply_abaha_order(order_event(), ctx)
    (made,) = made_in_kiotviet(kiotviet)
    copy = kiotviet.create_order({"description": made["description"], "orderDetails": []})  # same marker
    assert apply_kiotviet_order(kiotviet_status(copy.id, 4, made["description"]), ctx) == Outcome.IGNORED
    assert abaha.statuses == {}
    assert apply_kiotviet_order(kiotviet_status(made["id"], 4, made["description"]), ctx) == Outcome.APPLIED
    assert abaha.statuses == {ORDER_ID: "cancelled"}


def test_a_status_waits_while_the_creation_it_may_come_from_is_unsettled(
    ctx: ShopContext, kiotviet: FakeKiotViet, abaha: FakeAbaha
) -> None:
    intent_since(ctx, seconds_ago=SETTLE_SECONDS + 1)  # the create's answer was lost
    made = kiotviet.create_order({"description": f"Đơn Abaha DH98765 [abaha:{ORDER_ID}]",
                                  "orderDetails": [{"productId": 3001, "quantity": 1, "price": 150000}]})  # fmt: skip
    copy = kiotviet.create_order({"description": f"Đơn Abaha DH98765 [abaha:{ORDER_ID}]", "orderDetails": []})
    with pytest.raises(TransientError, match="not settled"):
        apply_kiotviet_order(kiotviet_status(copy.id, 4, f"[abaha:{ORDER_ID}]"), ctx)
    apply_abaha_order(order_event(), ctx)  # the retry adopts the first order carrying the marker
    assert apply_kiotviet_order(kiotviet_status(copy.id, 4, f"[abaha:{ORDER_ID}]"), ctx) == Outcome.IGNORED
    assert apply_kiotviet_order(kiotviet_status(made.id, 3, f"[abaha:{ORDER_ID}]"), ctx) == Outcome.APPLIED
    assert abaha.statuses == {ORDER_ID: "completed"}


def test_the_marker_is_trusted_when_the_link_was_lost(ctx: ShopContext, abaha: FakeAbaha) -> None:
    description = f"Đơn Abaha DH98765 [abaha:{ORDER_ID}]"
    assert apply_kiotviet_order(kiotviet_status(4242, 3, description), ctx) == Outcome.APPLIED
    assert abaha.statuses == {ORDER_ID: "completed"}
