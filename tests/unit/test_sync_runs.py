from __future__ import annotations

import fakeredis
import pytest

from adapters import keys
from adapters.links import LinkStore
from adapters.pending import Applied, PendingStore
from adapters.state import SyncState
from adapters.syncruns import SyncRuns, Watermarks
from workers.sync import next_entity


def test_a_run_reports_progress_per_entity_and_its_errors() -> None:
    runs = SyncRuns(fakeredis.FakeRedis())
    run_id = runs.start("shop-42", ["categories", "products"])
    runs.set_state("shop-42", run_id, "running")
    runs.progress("shop-42", run_id, "products", 100, 250)
    runs.progress("shop-42", run_id, "products", 100, 250)
    runs.error("shop-42", run_id, "products from item 200: Abaha answered 503")
    run = runs.describe("shop-42")
    assert run is not None
    assert (run["id"], run["state"]) == (run_id, "running")
    assert run["entities"] == {"categories": {"done": 0, "total": None}, "products": {"done": 200, "total": 250}}
    assert run["errors"] == ["products from item 200: Abaha answered 503"]


def test_a_new_run_supersedes_the_previous_one() -> None:
    runs = SyncRuns(fakeredis.FakeRedis())
    first = runs.start("shop-42", ["products"])
    second = runs.start("shop-42", ["products"])
    assert not runs.is_current("shop-42", first) and runs.is_current("shop-42", second)


def test_each_price_books_prices_follow_the_price_books() -> None:
    runs = SyncRuns(fakeredis.FakeRedis())
    run_id = runs.start("s", ["products", "pricebooks", "customers"])
    runs.remember("s", run_id, "pricebooks", [201, 202, 201])  # a page read twice
    steps, entity = [], "products"  # type: list[str], str | None
    while entity is not None:
        steps.append(entity)
        entity = next_entity(runs, "s", run_id, entity)
    assert steps == ["products", "pricebooks", "prices:201", "prices:202", "customers"]


def test_watermarks_are_kept_per_shop_and_pull() -> None:
    redis = fakeredis.FakeRedis()
    marks = Watermarks(redis)
    marks.set("shop-4", "kiotviet:products", "2026-11-30T03:00:00+00:00")
    assert Watermarks(redis).get("shop-4", "kiotviet:products") == "2026-11-30T03:00:00+00:00"
    assert marks.get("shop-42", "kiotviet:products") is None


@pytest.mark.parametrize("gone, kept", [("shop-4", "shop-42"), ("11", "shop-11"), ("stock", "shop-9"),
                                        ("phone", "phone-2"), ("shop", "stock")])  # fmt: skip
def test_forgetting_a_shop_leaves_other_shops_alone_whatever_their_names(gone: str, kept: str) -> None:
    redis = fakeredis.FakeRedis()
    state, marks, pending, links = SyncState(redis), Watermarks(redis), PendingStore(redis), LinkStore(redis)
    for shop in (gone, kept):
        pending.record_applied(shop, "product", {"1": Applied(5, "fp")})
        marks.set(shop, "kiotviet:products", "x")
        state.count(shop, "applied")
        links.link_customer(shop, 7, 8)
        redis.set(keys.shop_key(shop, keys.LOCK, "stock", "11"), "held")
    state.forget_shop(gone)
    assert pending.applied(gone, "product", ["1"]) == {"1": None} and marks.get(gone, "kiotviet:products") is None
    assert links.abaha_customer_for(gone, 7) == 8  # links are kept: saving the shop again makes nothing twice
    assert pending.applied(kept, "product", ["1"]) == {"1": Applied(5, "fp")}
    assert marks.get(kept, "kiotviet:products") == "x"
    assert state.counts(kept)["applied"] == 1
    assert redis.get(keys.shop_key(kept, keys.LOCK, "stock", "11")) == b"held"
    assert redis.get(keys.shop_key(gone, keys.LOCK, "stock", "11")) is None
