"""The catalog converges: whatever KiotViet's products, stock, price books, prices and categories
go through, and whatever becomes of their deliveries (dropped, repeated, late, out of order),
after the deliveries that arrive, reconciliation pulls and draining, Abaha holds exactly what
KiotViet holds.

A hypothesis state machine drives a fake KiotViet (the truth) and the service (fakeredis, the
real pending store, drains on RQ's SimpleWorker, real appliers and reconciliation) against a fake
Abaha. A bounded run is part of the default test run; `./test.sh -m long` runs many more.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import timedelta
from typing import Any

import fakeredis
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from rq import SimpleWorker
from rq.serializers import JSONSerializer

from adapters.connections import Connection
from adapters.inbox import QUEUES, event_queue
from config import Settings
from sandbox.kiotviet_delivery import pascal
from schemas.kiotviet_webhook import normalize_delivery
from tests.fakes import FakeAbaha, FakeKiotViet, stamp
from wiring import Services, services_on
from workers import reconcile
from workers.context import ShopContext
from workers.policy import failure_policy
from workers.reconcile import PULLS, pull

SHOP, BRANCH = "shop-42", 11
PRODUCTS, CATEGORIES, BOOKS = (1, 2, 3, 4), (21, 22), (31, 32)
IDS = st.sampled_from(PRODUCTS)


class Catalog(RuleBasedStateMachine):
    """One shop's catalogue, changed in KiotViet, delivered however the network pleases."""

    def __init__(self) -> None:
        super().__init__()
        self.monkeypatch = pytest.MonkeyPatch()
        self.kiotviet, self.abaha = FakeKiotViet(), FakeAbaha()
        settings_ = Settings.from_env({"REDIS_URL": "redis://fake", "SECRET_KEY": "k", "ABAHA_API_URL": "http://a",
                                       "LOCAL_STATE_DIR": "/tmp", "RECONCILE_INTERVAL": "0"})  # fmt: skip
        self.services: Services = services_on(settings_, fakeredis.FakeRedis(), "redis://fake")
        connection = Connection(SHOP, "demo", "cid", BRANCH, saved_at="2026-01-01T00:00:00+00:00")
        self.ctx = ShopContext(connection, self.kiotviet, self.abaha, self.services.state, self.services.links,
                               self.services.pending, self.services.catalog)  # fmt: skip
        for module in ("workers.drain", "workers.sync", "workers.reconcile"):
            self.monkeypatch.setattr(f"{module}.process_services", lambda: self.services)
            self.monkeypatch.setattr(f"{module}.shop_context", self.context)
        self.monkeypatch.setattr(reconcile, "PRICE_PULL_EVERY", timedelta(0))
        self.in_flight: list[dict[str, Any]] = []
        self.deleted: set[int] = set()  # KiotViet never gives a deleted id to anything else

    def context(self, _: Services, shop_id: str, priority: str = "webhook") -> ShopContext | None:
        return replace(self.ctx, memo={}) if shop_id == SHOP else None

    def teardown(self) -> None:
        self.monkeypatch.undo()

    # -- KiotViet changes, each sending its delivery into the network

    def send(self, action: str, data: list[Any]) -> None:
        body = {"Id": str(uuid.uuid4()), "Attempt": 1, "Notifications": [{"Action": f"{action}.1", "Data": data}]}
        self.in_flight.append(body)

    @initialize()
    def open_shop(self) -> None:
        for category in CATEGORIES:
            self.kiotviet.categories[category] = {"categoryId": category, "categoryName": f"Danh mục {category}",
                                                  "parentId": None, "modifiedDate": stamp()}  # fmt: skip
        for book in BOOKS:
            self.kiotviet.books[book] = {"id": book, "name": f"Bảng giá {book}", "isActive": True,
                                         "modifiedDate": stamp()}  # fmt: skip
            self.kiotviet.prices[book] = {}

    @rule(product=IDS, price=st.integers(1, 5).map(lambda n: n * 1000), active=st.booleans(),
          category=st.sampled_from(CATEGORIES))  # fmt: skip
    def edit_product(self, product: int, price: int, active: bool, category: int) -> None:
        if product in self.deleted:
            return
        if product in self.kiotviet.products:
            row = self.kiotviet.edit_product(product, basePrice=price, isActive=active, categoryId=category)
        else:
            row = self.kiotviet.add_product(product, basePrice=price, isActive=active, categoryId=category,
                                            masterProductId=None, masterUnitId=None)  # fmt: skip
        self.send("product.update", [pascal(row)])

    @precondition(lambda self: self.kiotviet.products)
    @rule(data=st.data(), on_hand=st.integers(0, 9), reserved=st.integers(0, 3))
    def change_stock(self, data: st.DataObject, on_hand: int, reserved: int) -> None:
        product = data.draw(st.sampled_from(sorted(self.kiotviet.products)))
        self.kiotviet.set_stock(product, BRANCH, on_hand, reserved)
        self.send("stock.update", [{"ProductId": product, "BranchId": BRANCH, "OnHand": on_hand, "Reserved": reserved}])

    @precondition(lambda self: self.kiotviet.products)
    @rule(data=st.data())
    def delete_product(self, data: st.DataObject) -> None:
        product = data.draw(st.sampled_from(sorted(self.kiotviet.products)))
        self.kiotviet.delete_product(product)
        self.deleted.add(product)
        self.send("product.delete", [{"RemoveId": [product]}])

    @rule(category=st.sampled_from(CATEGORIES), name=st.sampled_from(["Áo", "Quần", "Váy"]))
    def edit_category(self, category: int, name: str) -> None:
        if category in self.deleted:
            return
        row = {"categoryId": category, "categoryName": name, "parentId": None, "modifiedDate": stamp()}
        self.kiotviet.categories[category] = row
        self.send(
            "category.update", [{"Id": category, "Name": name, "ParentId": None, "ModifiedDate": row["modifiedDate"]}]
        )

    @precondition(lambda self: self.kiotviet.categories)
    @rule(data=st.data())
    def delete_category(self, data: st.DataObject) -> None:
        category = data.draw(st.sampled_from(sorted(self.kiotviet.categories)))
        self.kiotviet.delete_category(category)
        self.deleted.add(category)
        self.send("category.delete", [{"RemoveId": [category]}])

    @rule(book=st.sampled_from(BOOKS), product=IDS, price=st.integers(1, 9).map(lambda n: n * 500))
    def set_price(self, book: int, product: int, price: int) -> None:
        if book in self.kiotviet.books:
            self.kiotviet.prices[book][product] = price
            self.send("pricebookdetail.update", [{"PriceBookId": book, "ProductId": product, "Price": price}])

    @rule(book=st.sampled_from(BOOKS), product=IDS)
    def delete_price(self, book: int, product: int) -> None:
        if self.kiotviet.prices.get(book, {}).pop(product, None) is not None:
            self.send("pricebookdetail.delete", [{"PricebookId": book, "ProductIds": [product]}])

    @rule(book=st.sampled_from(BOOKS), active=st.booleans())
    def edit_price_book(self, book: int, active: bool) -> None:
        if book in self.kiotviet.books:
            self.kiotviet.books[book].update(isActive=active, modifiedDate=stamp())
            row = self.kiotviet.books[book]
            self.send("pricebook.update", [{"Id": book, "Name": row["name"], "IsActive": active,
                                            "ModifiedDate": row["modifiedDate"]}])  # fmt: skip

    # -- the network and the service

    @precondition(lambda self: self.in_flight)
    @rule(data=st.data(), again=st.booleans())
    def deliver(self, data: st.DataObject, again: bool) -> None:
        """Any delivery in flight arrives (out of order); it may arrive again later."""
        index = data.draw(st.integers(0, len(self.in_flight) - 1))
        body = self.in_flight[index] if again else self.in_flight.pop(index)
        events = normalize_delivery(json.dumps(body).encode(), body, SHOP, stamp()).events
        self.services.inbox.accept(SHOP, events, branch_id=BRANCH)

    @precondition(lambda self: self.in_flight)
    @rule(data=st.data())
    def drop(self, data: st.DataObject) -> None:
        self.in_flight.pop(data.draw(st.integers(0, len(self.in_flight) - 1)))

    @rule()
    def drain(self) -> None:
        queues = [event_queue(self.services.redis, name) for name in QUEUES]
        worker = SimpleWorker(queues, connection=self.services.redis, serializer=JSONSerializer,
                              exception_handlers=[failure_policy])  # fmt: skip
        while any(q.count for q in queues):
            worker.work(burst=True, max_jobs=100)

    @rule()
    def reconcile(self) -> None:
        for name, read in PULLS.items():
            if name.startswith("kiotviet:"):
                pull(self.services, self.ctx, name, read)

    @invariant()
    def nothing_failed(self) -> None:
        assert self.services.state.counts(SHOP)["failed"] == 0

    # -- the end: what arrives has arrived, reconciliation pulled, every batch drained

    def converged(self) -> None:
        self.in_flight.clear()
        self.reconcile()
        self.drain()
        assert self.services.pending.pending_count(SHOP) == 0
        products = {p: r for p, r in self.kiotviet.products.items()}
        for product, row in products.items():
            written = self.abaha.products[product]
            inventory = next((i for i in row["inventories"] if i["branchId"] == BRANCH), None)
            stock = max(0, int(inventory["onHand"] - inventory["reserved"])) if inventory else 0
            assert (written["price"], written["active"], written["category_kv_id"], written["stock"]) == (
                row["basePrice"], row["isActive"], row["categoryId"], stock), product  # fmt: skip
        for product, written in self.abaha.products.items():
            if product not in products:
                assert written["active"] is False, product  # deleted in KiotViet: hidden, kept
        assert {c: r["name"] for c, r in self.abaha.categories.items()} == {
            c: r["categoryName"] for c, r in self.kiotviet.categories.items()}  # fmt: skip
        assert {b: r["active"] for b, r in self.abaha.price_lists.items()} == {
            b: r["isActive"] for b, r in self.kiotviet.books.items()}  # fmt: skip
        assert {k: v for k, v in self.abaha.prices.items()} == {
            (b, p): v for b, prices in self.kiotviet.prices.items() for p, v in prices.items()}  # fmt: skip


def run(examples: int, steps: int) -> None:
    class Converging(Catalog):
        def teardown(self) -> None:
            try:
                self.converged()
            finally:
                super().teardown()

    Converging.TestCase.settings = settings(max_examples=examples, stateful_step_count=steps, deadline=None,
                                            suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
    Converging.TestCase().runTest()


def test_the_catalog_converges_to_kiotviets_state() -> None:
    run(examples=25, steps=30)


@pytest.mark.long
def test_the_catalog_converges_to_kiotviets_state_over_many_runs() -> None:
    run(examples=1000, steps=60)
