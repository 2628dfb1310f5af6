"""Reconciliation pulls: by key, so pages that shift during a pull skip nothing; from a
checkpoint after a pull cut short; and feeding only what was not applied yet."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters.kiotviet import BudgetExhausted
from adapters.syncruns import Watermarks
from schemas.changes import Change
from tests.conftest import SHOP
from tests.fakes import VIETNAM, FakeAbaha, FakeKiotViet
from wiring import Services
from workers.context import ShopContext
from workers.reconcile import pull, read_abaha_orders, read_kiotviet_orders, read_products

SINCE = "2026-11-30T00:00:00+00:00"


@pytest.fixture
def reconciling(ctx: ShopContext) -> ShopContext:
    return replace(ctx, connection=replace(ctx.connection, saved_at=SINCE))


def kiotviet_order(kiotviet: FakeKiotViet, order_id: int, minutes: int) -> None:
    when = (datetime(2026, 11, 30, 9, tzinfo=VIETNAM) + timedelta(minutes=minutes)).isoformat()
    kiotviet.orders[order_id] = {"id": order_id, "code": f"DH{order_id}", "status": 1, "modifiedDate": when}


def entity_ids(changes: list[Change]) -> list[str]:
    return [c.entity for c in changes]


def test_a_kiotviet_page_shifting_during_a_pull_skips_no_order(
    reconciling: ShopContext, kiotviet: FakeKiotViet
) -> None:
    for n in range(1, 151):
        kiotviet_order(kiotviet, n, n)
    seen: list[str] = []
    for changes, _ in read_kiotviet_orders(reconciling, {"boundary": SINCE}):
        seen += entity_ids(changes)
        if len(seen) == 100:  # an order of the first page is edited before the second page is read
            kiotviet_order(kiotviet, 50, 10_000)
    assert {f"kv_order:{n}" for n in range(1, 151)} <= set(seen)


def test_an_abaha_page_shifting_during_a_pull_skips_no_order(reconciling: ShopContext, abaha: FakeAbaha) -> None:
    base = datetime(2026, 11, 30, 9, tzinfo=VIETNAM)

    def order(n: int, minutes: int) -> dict[str, Any]:
        return {
            "id": n,
            "code": f"DH{n}",
            "status": "new",
            "items": [{"sku": "A", "quantity": 1, "unit_price": 1}],
            "total": 1,
            "updated_at": (base + timedelta(minutes=minutes)).isoformat(timespec="seconds"),
        }

    abaha.orders = {n: order(n, n) for n in range(1, 151)}
    seen: list[str] = []
    for changes, _ in read_abaha_orders(reconciling, {"boundary": SINCE}):
        seen += entity_ids(changes)
        if len(seen) == 100:
            abaha.orders[50] = order(50, 10_000)
    assert {f"abaha_order:{n}" for n in range(1, 151)} <= set(seen)


def test_an_unreadable_item_is_reported_and_the_rest_of_the_page_goes_on(
    reconciling: ShopContext, kiotviet: FakeKiotViet, services: Services
) -> None:
    kiotviet.add_product(1, code="A")
    kiotviet.add_product(2, code="B", basePrice="lots")  # does not read
    kiotviet.add_product(3, code="C")
    changes = [c for page, _ in read_products(reconciling, {"boundary": SINCE}) for c in page]
    assert entity_ids(changes) == ["product:1", "product:3"]
    (problem,) = services.state.problems(SHOP)
    assert "does not read" in problem["message"] and "baseprice" in problem["message"]


def test_a_pull_cut_short_goes_on_from_its_checkpoint(services: Services, reconciling: ShopContext) -> None:
    positions: list[Any] = []
    budget = {"pages": 2}

    def read(context: ShopContext, checkpoint: dict[str, Any]) -> Iterator[tuple[list[Change], dict[str, Any]]]:
        start = int(checkpoint.get("offset") or 0)
        positions.append(start)
        for position in range(start, 5):
            if budget["pages"] == 0:
                raise BudgetExhausted("spent", 60)
            budget["pages"] -= 1
            yield [], {"offset": position + 1}

    with pytest.raises(BudgetExhausted):
        pull(services, reconciling, "kiotviet:categories", read)
    marks = Watermarks(services.redis)
    assert marks.get(SHOP, "kiotviet:categories") is None  # not moved before the pull is complete
    budget["pages"] = 10
    pull(services, reconciling, "kiotviet:categories", read)
    assert positions == [0, 2]
    assert marks.get(SHOP, "kiotviet:categories") is not None
    assert marks.checkpoint(SHOP, "kiotviet:categories") is None


def test_a_second_pull_of_what_was_applied_makes_no_change_pending(
    services: Services, reconciling: ShopContext, kiotviet: FakeKiotViet, work_off: Callable[[], int]
) -> None:
    for n in range(1, 6):
        kiotviet.add_product(n, masterProductId=None)
    first = pull(services, reconciling, "kiotviet:products", read_products)
    work_off()
    Watermarks(services.redis).finish(SHOP, "kiotviet:products", SINCE)  # the same window again
    again = pull(services, reconciling, "kiotviet:products", read_products)
    assert (first, again) == (5, 0)
    assert services.pending.pending_count(SHOP) == 0


def test_the_watermark_is_the_pulls_start_minus_the_margin(services: Services, reconciling: ShopContext) -> None:
    def read(context: ShopContext, checkpoint: dict[str, Any]) -> Iterator[tuple[list[Change], dict[str, Any]]]:
        yield [], {}

    before = datetime.now(UTC)
    pull(services, reconciling, "kiotviet:categories", read)
    mark = datetime.fromisoformat(Watermarks(services.redis).get(SHOP, "kiotviet:categories") or "")
    assert before - timedelta(minutes=2, seconds=1) <= mark <= datetime.now(UTC) - timedelta(minutes=2)
