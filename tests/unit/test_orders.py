from __future__ import annotations

import json
from typing import Any

import fakeredis
import pytest

from adapters.connections import Connection
from adapters.errors import KiotVietNotFound, KiotVietRejected
from adapters.links import LinkStore
from adapters.state import SyncState
from schemas.abaha import AbahaOrder, normalize_event
from schemas.kiotviet import ProductSchema
from tests.helpers import sample
from workers.context import ShopContext
from workers.orders import OrderRefused, apply_abaha_order, explain_refusal, kiotviet_order_body, marker_of


class FakeKiotViet:
    def __init__(self) -> None:
        self.orders: list[dict[str, Any]] = []
        self.refusal: str | None = None

    def product_by_code(self, code: str) -> Any:
        if code != "SP000124":
            raise KiotVietNotFound("no", 404)
        return ProductSchema().load({"id": 3002, "code": code})

    def customers_by_phone(self, phone: str) -> list[dict[str, Any]]:
        return [{"id": 7001, "contactnumber": phone}]

    def create_order(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.refusal:
            raise KiotVietRejected("refused", 400, self.refusal)
        self.orders.append(body)
        return {"id": 500 + len(self.orders), "code": f"DH{len(self.orders)}"}

    def order(self, order_id: int) -> dict[str, Any]:
        body = self.orders[order_id - 501]
        lines = sum(d["quantity"] * (d["price"] - d["discount"]) for d in body["orderDetails"])
        return {"total": lines - body["discount"] + sum(s["price"] for s in body.get("surchages", []))}


class FakeAbaha:
    def __init__(self) -> None:
        self.links: list[tuple[int, int, str]] = []

    def link_order(self, abaha_id: int, kv_id: int, kv_code: str) -> None:
        self.links.append((abaha_id, kv_id, kv_code))


@pytest.fixture
def ctx() -> ShopContext:
    connection = Connection("shop-42", "demo", "cid", 11, surcharge_code="THK000001", surcharge_id=1)
    redis = fakeredis.FakeRedis()
    return ShopContext(connection, FakeKiotViet(), FakeAbaha(), SyncState(redis), LinkStore(redis))  # type: ignore[arg-type]


def order_event(**changes: Any) -> Any:
    body = sample("abaha/order.created")
    body["data"].update(changes)
    event = normalize_event(body, "shop-42", "2026-11-30T03:15:01+00:00")
    assert event is not None
    return event


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


def test_a_replayed_order_is_not_created_twice(ctx: ShopContext) -> None:
    event = order_event()
    assert apply_abaha_order(event, ctx) == "applied"
    assert apply_abaha_order(event, ctx) == "ignored"
    assert len(ctx.kiotviet.orders) == 1  # type: ignore[attr-defined]
    assert ctx.abaha.links == [(98765, 501, "DH1")]  # type: ignore[attr-defined]


def test_a_refused_order_leaves_no_intent_so_a_replay_creates_it(ctx: ShopContext) -> None:
    ctx.kiotviet.refusal = "Không đủ số lượng tồn kho cho sản phẩm SP000123"  # type: ignore[attr-defined]
    with pytest.raises(OrderRefused, match="Cho phép đặt hàng khi hết tồn kho"):
        apply_abaha_order(order_event(), ctx)
    assert ctx.links.order_record("shop-42", 98765) is None
    ctx.kiotviet.refusal = None  # type: ignore[attr-defined]
    assert apply_abaha_order(order_event(), ctx) == "applied"


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


def test_a_recent_intent_waits_and_an_old_one_adopts_what_was_made(ctx: ShopContext) -> None:
    from adapters.errors import TransientError

    ctx.links.record_intent("shop-42", 98765)
    with pytest.raises(TransientError, match="may still be waiting"):
        apply_abaha_order(order_event(), ctx)
    made = {"id": 777, "code": "DH777", "description": "Đơn Abaha DH98765 [abaha:98765]"}
    ctx.kiotviet.pages = lambda path, params: iter([{"total": 1, "data": [made]}])  # type: ignore[attr-defined]
    old = {"state": "intent", "since": "2026-11-30T00:00:00+00:00"}
    ctx.state._redis.hset("sync:links:shop-42:orders", "98765", json.dumps(old))  # type: ignore[attr-defined]
    ctx.kiotviet.order = lambda order_id: {"total": 320000}  # type: ignore[attr-defined]
    assert apply_abaha_order(order_event(), ctx) == "applied"
    assert ctx.abaha.links == [(98765, 777, "DH777")]  # type: ignore[attr-defined]
    assert ctx.kiotviet.orders == []  # type: ignore[attr-defined]  # adopted, nothing created
