"""Orders and customers converge both ways: whatever shoppers, staff and the network do, after
draining there is exactly one KiotViet order per Abaha order, one customer per person on each
side, no field erased, and every Abaha order's status is what its KiotViet order says.

A hypothesis state machine drives a fake Abaha and a fake KiotViet (tests/fakes.py) and the
service (fakeredis, the pending store, drains and single-change jobs on RQ's SimpleWorker, the
real handlers and reconciliation). Besides customers edited on both sides (phones in both
forms), orders placed on Abaha, completed or cancelled or copied by hand in KiotViet, and every
delivery dropped, repeated, late or out of order, KiotViet may make an order or a customer and
lose its answer, Abaha may fail a write once, and a worker may die between any two calls (its
lease runs out; RQ runs its jobs again). Time is moved forward past the adoption windows.
A bounded run is in the default test run; `./test.sh -m long` runs many more.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import fakeredis
import fakeredis.commands_mixins.server_mixin as fake_server
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule
from rq import SimpleWorker
from rq.serializers import JSONSerializer

from adapters import clock
from adapters.connections import Connection
from adapters.errors import TransientError
from adapters.inbox import QUEUES, event_queue
from admin.failed import requeue_failed
from config import Settings
from schemas.abaha import normalize_event
from schemas.customers import local_phone
from schemas.kiotviet_webhook import normalize_delivery
from tests.fakes import VIETNAM, FakeAbaha, FakeKiotViet, stamp
from tests.helpers import queue_scheduled
from wiring import Services, services_on
from workers import drain
from workers.context import ShopContext
from workers.policy import failure_policy
from workers.reconcile import PULLS, pull

SHOP, BRANCH = "shop-42", 11
PHONES = ("0912000001", "0912000002", "0912000003")
PERSONS = st.sampled_from(range(len(PHONES)))
# Which of the orders or deliveries there are now: drawn from a range fixed in advance and taken
# modulo how many there are, so that no strategy depends on the run's state (it depends on real
# time: Redis's TIME, RQ's registries), and hypothesis replays a choice sequence the same way.
WHICH = st.integers(0, 255)


class Crash(BaseException):
    """The worker process dies here: nothing after it runs (not an Exception the code handles)."""


class Clock:
    """Real time moved forward by the model: the service's clock, both fakes' and Redis's TIME
    (leases, versions of reads, what is pending since when) read this one, as in production they
    read clocks that agree."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def time(self) -> float:
        return self.now().timestamp()


def phone_as_written(person: int, plus: bool) -> str:
    """The same number as +84… or as 0…: one person either way."""
    return "+84" + PHONES[person][1:] if plus else PHONES[person]


class TwoWay(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.monkeypatch = pytest.MonkeyPatch()
        self.kiotviet, self.abaha, self.clock = FakeKiotViet(), FakeAbaha(), Clock()
        self.kiotviet.add_product(3001, code="SP000123", basePrice=100_000, masterProductId=None)
        settings_ = Settings.from_env({"REDIS_URL": "redis://fake", "SECRET_KEY": "k", "ABAHA_API_URL": "http://a",
                                       "LOCAL_STATE_DIR": "/tmp", "RECONCILE_INTERVAL": "0"})  # fmt: skip
        self.services: Services = services_on(settings_, fakeredis.FakeRedis(), "redis://fake")
        connection = Connection(SHOP, "demo", "cid", BRANCH, surcharge_code="THK000001", surcharge_id=1,
                                saved_at="2026-01-01T00:00:00+00:00")  # fmt: skip
        self.ctx = ShopContext(connection, self.kiotviet, self.abaha, self.services.state, self.services.links,
                               self.services.pending, self.services.catalog)  # fmt: skip
        for module in ("workers.drain", "workers.sync", "workers.reconcile"):
            self.monkeypatch.setattr(f"{module}.process_services", lambda: self.services)
            self.monkeypatch.setattr(f"{module}.shop_context", self.context)
        self.monkeypatch.setattr(clock, "now", self.clock.now)
        self.monkeypatch.setattr(fake_server, "time", self.clock)  # Redis's TIME (not its keys' expiry)
        self.died = False  # a worker died: its lease runs out before the next drain (see `disarm`)
        self.in_flight: list[tuple[str, dict[str, Any]]] = []
        self.abaha_ids: dict[int, int] = {}  # person → their Abaha customer (made on the website)
        self.kiotviet_ids: dict[int, int] = {}  # person → their KiotViet customer (made at the counter)
        self.orders: list[int] = []
        self.next_order = 90_000
        self.seen_calls = {"kiotviet": 0, "abaha": 0}

    def context(self, _: Services, shop_id: str, priority: str = "webhook") -> ShopContext | None:
        return replace(self.ctx, memo={}) if shop_id == SHOP else None

    def teardown(self) -> None:
        self.monkeypatch.undo()

    # -- what people do

    @initialize()
    def open(self) -> None:
        self.kiotviet.set_stock(3001, BRANCH, 1000)

    @rule(person=PERSONS, name=st.sampled_from(["An", "Bình", "Cường"]), plus=st.booleans())
    def shopper_edits_their_account(self, person: int, name: str, plus: bool) -> None:
        customer_id = self.abaha_ids.setdefault(person, 5000 + person)
        current = self.abaha.customers.setdefault(customer_id, {"id": customer_id, "kv_id": None})
        current.update(name=name, phone=phone_as_written(person, plus), updated_at=abaha_now(self.clock))
        kind = "customer.updated" if len(current) > 5 else "customer.created"
        self.send_abaha(kind, current)

    @rule(person=PERSONS, name=st.sampled_from(["Anh An", "Chị Bình"]), ward=st.sampled_from(["Phường 1", "Phường 2"]))
    def staff_edit_a_customer_in_kiotviet(self, person: int, name: str, ward: str) -> None:
        existing = next((c for c in self.kiotviet.customers.values()
                         if local_phone(c.get("contactNumber")) == PHONES[person]), None)  # fmt: skip
        if existing is None:
            customer_id = 7000 + person
            existing = self.kiotviet.customers.setdefault(customer_id, {"id": customer_id, "code": f"KH{customer_id}"})
            self.kiotviet_ids[person] = customer_id
        existing.update(name=name, contactNumber=PHONES[person], wardName=ward, locationName="Hà Nội - Ba Đình",
                        modifiedDate=stamp())  # fmt: skip
        self.send_kiotviet("customer.update", existing)

    @rule(person=PERSONS, quantity=st.integers(1, 3))
    def shopper_places_an_order(self, person: int, quantity: int) -> None:
        order_id, self.next_order = self.next_order, self.next_order + 1
        order = {"id": order_id, "code": f"DH{order_id}", "status": "new", "created_at": abaha_now(self.clock),
                 "updated_at": abaha_now(self.clock), "items": [{"sku": "SP000123", "kv_product_id": 3001,
                 "name": "Áo", "quantity": quantity, "unit_price": 100_000, "discount": 0}], "discount": 0,
                 "shipping_fee": 0, "other_fees": [], "total": quantity * 100_000,
                 "customer": {"name": "Khách", "phone": PHONES[person]}}  # fmt: skip
        self.abaha.orders[order_id] = order
        self.orders.append(order_id)
        self.send_abaha("order.created", order)

    @rule(which=WHICH, status=st.sampled_from([2, 3, 4, 5]), copy=st.booleans())
    def staff_change_an_order_in_kiotviet(self, which: int, status: int, copy: bool) -> None:
        marked = self.made_orders()
        if not marked:
            return  # no order has reached KiotViet yet
        order = marked[which % len(marked)]
        if copy:  # a copy made by hand: same description, the marker included
            armed = self.kiotviet.__dict__.pop("call", None)  # staff at the counter: no fault of the service's
            made = FakeKiotViet.create_order(self.kiotviet, {"description": order["description"], "orderDetails": []})
            if armed is not None:
                self.kiotviet.call = armed  # type: ignore[method-assign]
            order = self.kiotviet.orders[made.id]
        if order.get("status") in (3, 4):
            return  # KiotViet changes nothing of a completed or cancelled order
        order.update(status=status, modifiedDate=stamp())
        self.send_kiotviet("order.update", order)

    def made_orders(self) -> list[dict[str, Any]]:
        return [o for o in self.kiotviet.orders.values() if "[abaha:" in (o.get("description") or "")]

    # -- faults

    @rule()
    def kiotviet_makes_the_next_order_and_loses_its_answer(self) -> None:
        self.ambiguous(self.kiotviet, "create_order")

    @rule()
    def kiotviet_makes_the_next_customer_and_loses_its_answer(self) -> None:
        self.ambiguous(self.kiotviet, "create_customer")

    @rule()
    def abaha_fails_the_next_customer_write(self) -> None:
        self.abaha.fail_next("put_customer", TransientError("Abaha answered 503"))

    @rule(calls=st.integers(1, 6))
    def a_worker_dies_after_some_calls(self, calls: int) -> None:
        countdown = {"left": calls}
        for fake in (self.kiotviet, self.abaha):
            real = fake.call

            def call(name: str, detail: object = "", real: Callable[..., None] = real) -> None:
                real(name, detail)
                countdown["left"] -= 1
                if countdown["left"] == 0:
                    self.died = True
                    raise Crash(f"died after {name}")

            fake.call = call  # type: ignore[method-assign]

    def ambiguous(self, fake: FakeKiotViet, method: str) -> None:
        real = getattr(fake, method)

        def made_then_lost(body: dict[str, Any]) -> Any:
            real(body)
            setattr(fake, method, real)
            raise TransientError(f"KiotViet did not answer {method}: ReadTimeout")

        setattr(fake, method, made_then_lost)

    # -- the network and the service

    def send_abaha(self, kind: str, data: dict[str, Any]) -> None:
        body = {"id": f"evt_{uuid.uuid4().hex[:10]}", "type": kind, "shop_id": SHOP,
                "occurred_at": abaha_now(self.clock), "data": dict(data)}  # fmt: skip
        self.in_flight.append(("abaha", body))

    def send_kiotviet(self, kind: str, row: dict[str, Any]) -> None:
        data = {k[:1].upper() + k[1:]: v for k, v in row.items()}
        self.in_flight.append(
            ("kiotviet", {"Id": str(uuid.uuid4()), "Notifications": [{"Action": kind, "Data": [data]}]})
        )

    @rule(which=WHICH, again=st.booleans())
    def deliver(self, which: int, again: bool) -> None:
        if not self.in_flight:
            return
        index = which % len(self.in_flight)
        source, body = self.in_flight[index] if again else self.in_flight.pop(index)
        if source == "abaha":
            event = normalize_event(body, SHOP, stamp())
            events = [event] if event is not None else []
        else:
            events = normalize_delivery(json.dumps(body).encode(), body, SHOP, stamp()).events
        self.services.inbox.accept(SHOP, events, branch_id=BRANCH)

    @rule(which=WHICH)
    def drop(self, which: int) -> None:
        if self.in_flight:
            self.in_flight.pop(which % len(self.in_flight))

    @rule(minutes=st.sampled_from([1, 5, 15]))
    def time_passes(self, minutes: int) -> None:
        self.clock.offset += timedelta(minutes=minutes)

    @rule()
    def work(self) -> None:
        """Workers run what is queued (and, time having passed, what was scheduled for later)."""
        queue_scheduled(self.services.redis)
        queues = [event_queue(self.services.redis, name) for name in QUEUES]
        worker = SimpleWorker(queues, connection=self.services.redis, serializer=JSONSerializer,
                              exception_handlers=[failure_policy])  # fmt: skip
        for _ in range(20):
            if not any(q.count for q in queues):
                break
            worker.work(burst=True, max_jobs=50)
        self.disarm()
        self.services.inbox.wake(SHOP)  # the planner's part: a dead worker's batch is taken back
        self.echo_writes()

    def disarm(self) -> None:
        for fake in (self.kiotviet, self.abaha):
            fake.__dict__.pop("call", None)
        if self.died:  # what a dead worker held is free once its lease runs out (a live one's does not)
            self.clock.offset += timedelta(milliseconds=drain.LEASE_MS + 1)
            self.died = False

    def echo_writes(self) -> None:
        """Each side tells the service of the writes it made there, as their webhooks do."""
        kiotviet_calls, abaha_calls = self.kiotviet.calls[self.seen_calls["kiotviet"]:], self.abaha.calls[
            self.seen_calls["abaha"]:]  # fmt: skip
        self.seen_calls = {"kiotviet": len(self.kiotviet.calls), "abaha": len(self.abaha.calls)}
        if any(c.startswith(("create_customer", "update_customer")) for c in kiotviet_calls):
            for row in list(self.kiotviet.customers.values()):
                self.send_kiotviet("customer.update", row)
        if any(c.startswith("put_customer") for c in abaha_calls):
            for row in list(self.abaha.customers.values()):
                self.send_abaha(
                    "customer.updated", {**row, "updated_at": row.get("updated_at") or abaha_now(self.clock)}
                )

    @rule()
    def reconcile(self) -> None:
        for name, read in PULLS.items():
            if name != "kiotviet:prices":
                try:
                    pull(self.services, self.ctx, name, read)
                except Crash:
                    self.disarm()

    # -- the end

    def converged(self) -> None:
        """The faults are over; long after (every window over, every retry run, the failed
        changes replayed once by the operator) both sides agree."""
        self.disarm()
        for fake in (self.kiotviet, self.abaha):
            fake.failures.clear()
            fake.__dict__.pop("create_order", None)
            fake.__dict__.pop("create_customer", None)
        self.in_flight.clear()
        for round_ in range(4):
            self.clock.offset += timedelta(hours=1)
            if round_ == 2:
                requeue_failed(self.services.redis)
            self.reconcile()
            self.work()
            self.in_flight.clear()
        for order_id in self.orders:
            made = [o for o in self.kiotviet.orders.values() if f"[abaha:{order_id}]" in (o.get("description") or "")
                    and o.get("orderDetails")]  # fmt: skip
            assert len(made) == 1, (order_id, made)
            linked = self.abaha.order_links.get(order_id)
            assert linked is not None and linked[0] == made[0]["id"]
            wanted = {3: "completed", 4: "cancelled"}.get(made[0]["status"])
            assert self.abaha.statuses.get(order_id) == wanted or (
                wanted is None and order_id not in self.abaha.statuses), order_id  # fmt: skip
        phones = [local_phone(c.get("contactNumber")) for c in self.kiotviet.customers.values()]
        assert len(phones) == len(set(phones)), phones  # one KiotViet customer per person
        for customer_id in self.kiotviet_ids.values():
            row = self.kiotviet.customers[customer_id]
            assert row.get("wardName") and row.get("locationName"), row  # never erased by an Abaha write
        for person, abaha_id in self.abaha_ids.items():
            assert PHONES[person] in phones, person  # every shopper's account reached KiotViet
            linked_kv = self.services.links.kv_customer_for(SHOP, abaha_id)
            # linked to that person's customer, or not yet (their KiotViet customer had a newer
            # version and was already linked to the Abaha customer made from it)
            assert (
                linked_kv is None or local_phone(self.kiotviet.customers[linked_kv]["contactNumber"]) == PHONES[person]
            )


def abaha_now(at: Clock) -> str:
    return at.now().astimezone(VIETNAM).isoformat(timespec="seconds")


def run(examples: int, steps: int) -> None:
    class Converging(TwoWay):
        def teardown(self) -> None:
            try:
                self.converged()
            finally:
                super().teardown()

    Converging.TestCase.settings = settings(max_examples=examples, stateful_step_count=steps, deadline=None,
                                            suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
    Converging.TestCase().runTest()


def test_orders_and_customers_converge_both_ways() -> None:
    run(examples=20, steps=30)


@pytest.mark.long
def test_orders_and_customers_converge_both_ways_over_many_runs() -> None:
    run(examples=500, steps=60)
