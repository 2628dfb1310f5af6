"""Stock: a `stock.update` says *this changed*, KiotViet says *to what*, read in batches."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import fakeredis
import pytest
import structlog

from adapters.catalog import CatalogStore
from admin.failed import failed_changes
from schemas.kiotviet_webhook import normalize_delivery
from tests.conftest import BRANCH, SHOP
from tests.fakes import FakeAbaha, FakeKiotViet, stamp
from tests.unit.test_catalog import slow_product_reads
from wiring import Services
from workers.apply import BATCH_SECONDS, SLICE_SECONDS

Drain = Callable[[], int]


def stock_delivery(services: Services, delivery_id: str, items: list[tuple[int, float, float]],
                   branch: int = BRANCH) -> None:  # fmt: skip
    """A `stock.update` delivery: (product, onHand, reserved) items, values KiotViet sent then."""
    data = [{"ProductId": p, "ProductCode": f"SP{p}", "BranchId": branch, "OnHand": on_hand, "Reserved": reserved}
            for p, on_hand, reserved in items]  # fmt: skip
    body = {"Id": delivery_id, "Attempt": 1, "Notifications": [{"Action": "stock.update.500123456", "Data": data}]}
    events = normalize_delivery(json.dumps(body).encode(), body, SHOP, "2026-11-30T08:00:00+00:00").events
    services.inbox.accept(SHOP, events, branch_id=BRANCH)


def on_abaha(abaha: FakeAbaha, *product_ids: int, **body: Any) -> None:
    for product_id in product_ids:
        abaha.products[product_id] = {"sku": f"SP{product_id}", "name": "x", "stock": None, **body}


def test_the_value_written_is_the_one_kiotviet_holds_not_the_one_delivered(
    services: Services, work_off: Drain, abaha: FakeAbaha, kiotviet: FakeKiotViet
) -> None:
    on_abaha(abaha, 3001)
    kiotviet.add_product(3001)
    kiotviet.set_stock(3001, BRANCH, 20, 2)
    stock_delivery(services, "d1", [(3001, 9, 1)])
    work_off()
    assert abaha.products[3001]["stock"] == 18


def test_a_late_redelivery_of_an_older_value_does_not_undo_the_current_stock(
    services: Services, work_off: Drain, abaha: FakeAbaha, kiotviet: FakeKiotViet
) -> None:
    on_abaha(abaha, 3001)
    kiotviet.add_product(3001)
    kiotviet.set_stock(3001, BRANCH, 10)
    stock_delivery(services, "first", [(3001, 10, 0)])
    work_off()
    kiotviet.set_stock(3001, BRANCH, 5)
    stock_delivery(services, "second", [(3001, 5, 0)])
    work_off()
    stock_delivery(services, "first-late", [(3001, 10, 0)])  # KiotViet resends the first one, hours later
    work_off()
    assert abaha.products[3001]["stock"] == 5


def test_two_items_for_one_product_in_one_delivery_end_at_kiotvietes_current_value(
    services: Services, work_off: Drain, abaha: FakeAbaha, kiotviet: FakeKiotViet
) -> None:
    on_abaha(abaha, 3001)
    kiotviet.add_product(3001)
    kiotviet.set_stock(3001, BRANCH, 3)
    stock_delivery(services, "d", [(3001, 7, 0), (3001, 3, 0)])
    work_off()
    assert abaha.products[3001]["stock"] == 3
    assert abaha.count("patch_products") == 1


def test_a_storm_of_6000_items_over_60_products_costs_a_few_reads_and_writes(
    services: Services, work_off: Drain, abaha: FakeAbaha, kiotviet: FakeKiotViet
) -> None:
    products = list(range(5000, 5060))
    on_abaha(abaha, *products)
    for product in products:
        kiotviet.add_product(product)
        kiotviet.set_stock(product, BRANCH, 100 + product % 7)
    for n in range(60):  # 60 deliveries of 100 items, every product changing again and again
        stock_delivery(services, f"storm-{n}", [(products[(n + i) % 60], i, 0) for i in range(100)])
    work_off()
    assert {p: abaha.products[p]["stock"] for p in products} == {p: 100 + p % 7 for p in products}
    assert kiotviet.count("stock_page") + kiotviet.count("product") <= 3
    assert abaha.count("patch_products") <= 2


def test_stock_of_another_branch_is_ignored(services: Services, work_off: Drain, abaha: FakeAbaha) -> None:
    stock_delivery(services, "other", [(3001, 4, 0)], branch=12)
    work_off()
    assert abaha.calls == []
    assert services.state.counts(SHOP)["ignored"] == 1


def test_stock_of_a_product_abaha_lacks_sends_the_whole_product(
    services: Services, work_off: Drain, abaha: FakeAbaha, kiotviet: FakeKiotViet
) -> None:
    kiotviet.add_product(3001, code="SP000123", name="Áo", masterProductId=None)
    kiotviet.set_stock(3001, BRANCH, 9, 1)
    stock_delivery(services, "new", [(3001, 9, 1)])
    work_off()
    assert abaha.products[3001]["sku"] == "SP000123"
    assert abaha.products[3001]["stock"] == 8


def test_a_product_missing_from_the_recent_changes_is_read_by_itself(
    services: Services, work_off: Drain, abaha: FakeAbaha, kiotviet: FakeKiotViet
) -> None:
    on_abaha(abaha, 3001)
    kiotviet.add_product(3001)
    kiotviet.set_stock(3001, BRANCH, 6)
    kiotviet.products[3001]["stockModifiedDate"] = "2026-01-01T00:00:00+07:00"  # its change is long past
    stock_delivery(services, "late", [(3001, 1, 0)])
    work_off()
    assert "product 3001" in kiotviet.calls
    assert abaha.products[3001]["stock"] == 6


def test_a_batch_whose_stock_reads_take_its_time_leaves_the_rest_to_the_next_batch(
    services: Services, work_off: Drain, abaha: FakeAbaha, kiotviet: FakeKiotViet, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow_product_reads(monkeypatch, kiotviet, seconds=15)
    ids = list(range(4001, 4011))
    on_abaha(abaha, *ids)
    for pid in ids:  # stock changed long ago (a late redelivery): no page of recent changes has it
        kiotviet.add_product(pid, modifiedDate=stamp(-600), inventories=[{"branchId": BRANCH, "onHand": pid % 50,
                                                                          "reserved": 0}])  # fmt: skip
    stock_delivery(services, "late", [(pid, 0, 0) for pid in ids])
    work_off()
    assert {pid: abaha.products[pid]["stock"] for pid in ids} == {pid: pid % 50 for pid in ids}
    per_batch = [int(c.split(" ")[1]) for c in abaha.calls if c.startswith("patch_products")]
    # a batch stops starting reads after BATCH_SECONDS, so no batch runs into RQ's job timeout
    assert max(per_batch) <= BATCH_SECONDS // 15 + 1 and sum(per_batch) == 10, per_batch
    assert failed_changes(services.redis) == [] and services.state.counts(SHOP).get("retrying", 0) == 0


def test_a_stock_count_too_long_for_one_batch_goes_on_where_it_stopped(
    services: Services, work_off: Drain, abaha: FakeAbaha, kiotviet: FakeKiotViet, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = SimpleNamespace(now=0.0)
    monkeypatch.setattr("workers.apply.time", SimpleNamespace(monotonic=lambda: clock.now))
    page = kiotviet.stock_page

    def slow_page(branch_id: int, offset: int, *, since: str | None = None) -> Any:
        clock.now += BATCH_SECONDS / 4  # a page of KiotViet's takes a quarter of the batch's time
        return page(branch_id, offset, since=since)

    monkeypatch.setattr(kiotviet, "stock_page", slow_page)
    monkeypatch.setattr("workers.drain.BATCH_LIMIT", 100)
    count_the_whole_shop(services, work_off, abaha, kiotviet)
    assert kiotviet.count("stock_page") <= 12 + 2  # each page read about once, not again from the first


def count_the_whole_shop(services: Services, work_off: Drain, abaha: FakeAbaha, kiotviet: FakeKiotViet) -> None:
    """A stock count of the whole shop (1,200 products, 12 pages), delivered and applied: every
    product ends with KiotViet's stock."""
    ids = list(range(6000, 7200))
    on_abaha(abaha, *ids)
    for pid in ids:
        kiotviet.add_product(pid, inventories=[{"branchId": BRANCH, "onHand": pid % 50, "reserved": 0}])
    stock_delivery(services, "count", [(pid, 0, 0) for pid in ids])
    work_off()
    assert {pid: abaha.products[pid]["stock"] for pid in ids} == {pid: pid % 50 for pid in ids}


def test_a_read_stopped_for_time_goes_on_for_a_later_since_not_an_earlier_one() -> None:
    """A delivery taken in either side of a minute asks for changes since two minutes: the later
    batch goes on with the earlier read (a superset of its changes), not from the first page."""
    catalog = CatalogStore(fakeredis.FakeRedis())
    first, later, earlier = "2026-12-01T08:00:00+07:00", "2026-12-01T08:01:00+07:00", "2026-12-01T07:59:00+07:00"
    assert catalog.stock_cursor("shop-42", first) == (first, 0)
    catalog.save_stock_cursor("shop-42", first, 300)
    assert catalog.stock_cursor("shop-42", first) == (first, 300)
    assert catalog.stock_cursor("shop-42", later) == (first, 300)
    assert catalog.stock_cursor("shop-42", earlier) == (earlier, 0)  # the saved read misses what came before it
    assert catalog.stock_cursor("shop-43", first) == (first, 0)
    catalog.save_stock_cursor("shop-42", first, None)
    assert catalog.stock_cursor("shop-42", later) == (later, 0)


def test_a_stock_count_gives_up_its_worker_after_each_slice_of_reading(
    services: Services, work_off: Drain, abaha: FakeAbaha, kiotviet: FakeKiotViet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shop's stock count of 1,200 products is read a slice at a time, one batch a slice, each
    batch queued behind other shops' (fairness): no batch reads for seconds, the read goes on
    where the last batch stopped, and every value arrives."""
    clock = SimpleNamespace(now=0.0)
    monkeypatch.setattr("workers.apply.time", SimpleNamespace(monotonic=lambda: clock.now))
    page = kiotviet.stock_page
    pages_of: Counter[str] = Counter()

    def slow_page(branch_id: int, offset: int, *, since: str | None = None) -> Any:
        clock.now += SLICE_SECONDS / 2  # a page of KiotViet's takes half a slice
        pages_of[structlog.contextvars.get_contextvars()["batch_id"]] += 1
        return page(branch_id, offset, since=since)

    monkeypatch.setattr(kiotviet, "stock_page", slow_page)
    count_the_whole_shop(services, work_off, abaha, kiotviet)
    assert max(pages_of.values()) <= 3, pages_of  # a slice, and the page that ended it
    assert sum(pages_of.values()) <= 12 + 2  # each page read about once, not again from the first
