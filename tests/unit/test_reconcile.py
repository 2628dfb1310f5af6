from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from adapters.connections import Connection
from adapters.kiotviet import BudgetExhausted
from adapters.links import LinkStore
from adapters.syncruns import Watermarks
from schemas.events import Event
from schemas.kiotviet import CategorySchema
from wiring import Services
from workers.context import ShopContext
from workers.reconcile import _event, load_each, pull, read_products


@pytest.fixture
def ctx(services: Services) -> ShopContext:
    connection = Connection("shop-42", "demo", "cid", 11, saved_at="2026-11-30T00:00:00+00:00")
    return ShopContext(connection, None, None, services.state, LinkStore(services.redis))  # type: ignore[arg-type]


def test_a_pull_cut_short_goes_on_from_its_checkpoint(services: Services, ctx: ShopContext) -> None:
    starts: list[int] = []
    budget = {"pages": 2}

    def read(context: ShopContext, since: str, start: int) -> Iterator[tuple[list[Event], int]]:
        starts.append(start)
        for position in range(start, 5):
            if budget["pages"] == 0:
                raise BudgetExhausted("spent", 60)
            budget["pages"] -= 1
            yield [_event(context, "kiotviet", "category.delete", str(position), None, {"id": position})], position + 1

    with pytest.raises(BudgetExhausted):
        pull(services, ctx, "kiotviet:categories", read)
    marks = Watermarks(services.redis)
    assert marks.get("shop-42", "kiotviet:categories") is None  # not moved before the pull is complete
    budget["pages"] = 10
    assert pull(services, ctx, "kiotviet:categories", read) == 3
    assert starts == [0, 2]
    assert marks.get("shop-42", "kiotviet:categories") is not None
    assert marks.checkpoint("shop-42", "kiotviet:categories") is None


class Pages:
    def __init__(self, pages: list[dict[str, Any]]) -> None:
        self.pages = pages

    def pages_from(self, path: str, params: dict[str, Any], start: int) -> Iterator[tuple[dict[str, Any], int]]:
        for number, page in enumerate(self.pages):
            yield page, number + 1


def test_an_unreadable_item_is_reported_and_the_rest_of_the_page_goes_on(ctx: ShopContext) -> None:
    page = {"total": 3, "data": [{"id": 1, "code": "A"}, {"code": "no id"}, {"id": 3, "code": "C"}], "removeId": [9]}
    context = ShopContext(ctx.connection, Pages([page]), None, ctx.state, ctx.links)  # type: ignore[arg-type]
    ((events, position),) = list(read_products(context, "2026-11-30T00:00:00+00:00", 0))
    assert [(e.type, e.entity_id) for e in events] == [
        ("product.update", "1"), ("product.update", "3"), ("product.delete", "9")]  # fmt: skip
    assert position == 1
    (problem,) = ctx.state.problems("shop-42")
    assert "skipped KiotViet product None" in problem["message"] and "id" in problem["message"]


def test_load_each_keeps_what_reads(ctx: ShopContext) -> None:
    assert [c.id for c in load_each(CategorySchema(), [{"Id": 1}, {"Name": "x"}], ctx, "category")] == [1]
