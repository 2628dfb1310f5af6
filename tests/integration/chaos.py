"""The chaos run's scenario: a shop whose catalogue, orders and customers change at random on
both sides, every delivery sent one to three times in shuffled order, while workers are killed
and both peers fail a share of calls; then what both sides must hold once the service is done.

The scenario plays the people (staff in KiotViet, shoppers on the website) and the network (the
deliveries); the service runs as it does in production (tests/integration/conftest.py's stack).
It remembers what it expects of each side as it goes, so the end state is checked field by field.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import signal
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import psutil
import redis
import requests
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.registry import ScheduledJobRegistry, StartedJobRegistry
from rq.serializers import JSONSerializer

from adapters import keys
from adapters.inbox import QUEUES
from sandbox.abaha_sales import post_event
from sandbox.kiotviet_data import add_demo_assortment, grow_catalogue
from sandbox.kiotviet_delivery import Delivery, redeliver
from sandbox.stack import LocalStack
from schemas.customers import local_phone
from tests.integration.conftest import Shop, connect_shop
from tests.integration.test_full_sync import finished, start
from workers.reconcile import TICK

BRANCH = 11
SHIRT = 3101  # the demo shirt, whose variant group grows during the run
ORDER_PRODUCTS = (3001, 3002)  # ordered by shoppers; their prices and activity are left alone
UNKNOWN_SKU = "SP-KHONG-CO"  # an order for it fails for good: the one failure the scenario makes
FINAL = {3: "completed", 4: "cancelled"}
WEIGHTS = {"product": 18, "variant": 2, "stock": 24, "price": 12, "category": 4, "order": 10, "status": 8,
           "copy": 2, "abaha_customer": 10, "kiotviet_customer": 10}  # fmt: skip


@dataclass
class Person:
    phone: str
    origin: str  # "web": made an account on the website; "counter": made a customer in the shop
    abaha_id: int | None = None
    kiotviet_id: int | None = None
    name: str = ""
    last_side: str = ""
    last_at: float = 0.0


@dataclass
class Send:
    """One delivery, to be sent `times` times."""

    label: str
    go: Callable[[], list[int]]  # sends it once; answers the statuses the service gave
    times: int


@dataclass
class Report:
    changes: Counter[str] = field(default_factory=Counter)
    deliveries: int = 0
    sends: int = 0
    resends_needed: int = 0
    kills: int = 0
    faults_fired: dict[str, int] = field(default_factory=dict)
    calls_while_broken: dict[str, int] = field(default_factory=dict)  # what the faults' 2.5% each drew from
    seconds_to_send: float = 0.0
    seconds_to_drain: float = 0.0
    differences: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    secrets_found: list[str] = field(default_factory=list)
    texts_searched: int = 0

    def as_json(self) -> dict[str, Any]:
        return {"changes": sum(self.changes.values()), "changes_by_kind": dict(self.changes),
                "deliveries": self.deliveries, "sends": self.sends, "resends_needed": self.resends_needed,
                "kills": self.kills, "faults_fired": self.faults_fired, "calls_while_broken": self.calls_while_broken,
                "seconds_to_send": round(self.seconds_to_send, 1),
                "seconds_to_drain": round(self.seconds_to_drain, 1), "differences": self.differences,
                "duplicates": self.duplicates, "secrets_found": self.secrets_found,
                "texts_searched": self.texts_searched}  # fmt: skip


class Scenario:
    def __init__(self, stack: LocalStack, seed: int) -> None:
        self.stack, self.rng = stack, random.Random(seed)  # noqa: S311 - a replayable scenario
        self.seed = seed
        self.shop: Shop = connect_shop(stack)
        self.redis = redis.Redis.from_url(stack.env["REDIS_URL"])
        self.report = Report()
        self.people: list[Person] = []
        self.orders: dict[int, dict[str, Any]] = {}  # Abaha order id → the order placed
        self.bad_order: int | None = None
        self.next_id = 700_000
        self.lock = threading.Lock()
        self.busy: str | None = None  # what was still to do at the last look
        self.calls_at_break = (0, 0)

    # -- the shop before the run

    def open_shop(self) -> None:
        retailer = self.shop.retailer
        add_demo_assortment(retailer)
        grow_catalogue(retailer, products=40, categories=3, variant_groups=4, variants_per_group=2, unit_rows=4,
                       pricebooks=2, prices_per_book=20, first_id=100_000)  # fmt: skip
        finished(self.shop, start(self.shop, ["categories", "pricebooks", "products"]), deadline=300)
        for n in range(12):
            self.people.append(Person(f"09{n + 10:02d}{n * 7919 % 1_000_000:06d}", "web" if n % 2 else "counter"))

    # -- what people do

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def kiotviet(self, path: str, body: dict[str, Any] | None = None) -> Delivery:
        """A change made in KiotViet by the shop's staff; its delivery is held for the network."""
        url = f"{self.shop.sandbox_url}/_sandbox/kiotviet/{self.shop.retailer.name}/{path}?deliver=0"
        answer = requests.post(url, json=body or {}, timeout=30)
        answer.raise_for_status()
        delivery_id = answer.json()["delivery"]["id"]
        with self.shop.retailer.lock:
            return self.shop.retailer.deliveries[delivery_id]

    def abaha(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.shop.sandbox_url}/_sandbox/abaha/shops/{self.shop.shop_id}/{path}?deliver=0"
        answer = requests.post(url, json=body, timeout=30)
        answer.raise_for_status()
        said: dict[str, Any] = answer.json()
        return said

    def make_change(self) -> Send | None:
        kind = self.rng.choices(list(WEIGHTS), weights=list(WEIGHTS.values()))[0]
        made: Send | None = getattr(self, f"change_{kind}")()
        if made is not None:
            self.report.changes[kind] += 1
        return made

    def change_product(self) -> Send:
        retailer, rng = self.shop.retailer, self.rng
        product = rng.choice([p for p in retailer.products if p not in ORDER_PRODUCTS])
        change: dict[str, Any] = {"basePrice": rng.randrange(10, 500) * 1000, "name": f"Hàng {rng.randrange(10**6)}"}
        if rng.random() < 0.2:
            change["isActive"] = rng.random() < 0.7
        if rng.random() < 0.2:
            change["categoryId"] = rng.choice(list(retailer.categories))
        return self.kiotviet_send("product", self.kiotviet(f"products/{product}", change))

    def change_variant(self) -> Send:
        variant, value = self.new_id(), f"Cỡ {self.next_id % 1000}"
        body = {"code": f"SP000200-{variant}", "name": "Áo sơ mi Oxford", "basePrice": 330000, "categoryId": 101,
                "masterProductId": SHIRT, "attributes": [{"attributeName": "KÍCH THƯỚC", "attributeValue": value}],
                "inventories": [{"branchId": BRANCH, "onHand": 4, "reserved": 0}]}  # fmt: skip
        return self.kiotviet_send("variant", self.kiotviet(f"products/{variant}", body))

    def change_stock(self) -> Send:
        retailer = self.shop.retailer
        bases = [p for p, row in retailer.products.items() if row.get("masterUnitId") in (None, p)]
        product = self.rng.choice(bases)
        on_hand = self.rng.randrange(0, 300)
        body = {"branchId": BRANCH, "onHand": on_hand, "reserved": self.rng.randrange(0, 5)}
        return self.kiotviet_send("stock", self.kiotviet(f"products/{product}/stock", body))

    def change_price(self) -> Send:
        retailer = self.shop.retailer
        book = self.rng.choice(list(retailer.pricebooks))
        product = self.rng.choice([p for p in retailer.products if p not in ORDER_PRODUCTS])
        body = {"price": self.rng.randrange(5, 400) * 1000}
        return self.kiotviet_send("price", self.kiotviet(f"pricebooks/{book}/prices/{product}", body))

    def change_category(self) -> Send:
        category = self.rng.choice(list(self.shop.retailer.categories))
        body = {"categoryName": f"Danh mục {self.rng.randrange(10**6)}"}
        return self.kiotviet_send("category", self.kiotviet(f"categories/{category}", body))

    def change_order(self) -> Send:
        order_id = self.new_id()
        quantity = self.rng.randrange(1, 4)
        person = self.rng.choice(self.people)
        sku = "SP000123" if self.rng.random() < 0.5 else "SP000124"
        if self.bad_order is None and len(self.orders) >= 5:
            sku, self.bad_order = UNKNOWN_SKU, order_id
        price = 150000 if sku != "SP000124" else 250000
        order = {"id": order_id, "code": f"DH{order_id}", "customer": {"name": "Khách", "phone": person.phone},
                 "items": [{"sku": sku, "name": "Áo", "quantity": quantity, "unit_price": price, "discount": 0}],
                 "discount": 0, "shipping_fee": 20000, "other_fees": [], "total": quantity * price + 20000,
                 "payment_method": "cod"}  # fmt: skip
        placed = self.abaha("orders", order)["order"]
        self.orders[order_id] = placed
        return self.abaha_send("order", "order.created", placed)

    def made_orders(self) -> dict[int, dict[str, Any]]:
        """Abaha order id → the KiotViet order the service made of it (lines and all)."""
        with self.shop.retailer.lock:
            rows = list(self.shop.retailer.orders.values())
        made: dict[int, dict[str, Any]] = {}
        for row in rows:
            for order_id in self.orders:
                if f"[abaha:{order_id}]" in (row.get("description") or "") and row.get("orderDetails"):
                    made.setdefault(order_id, row)
        return made

    def change_status(self) -> Send | None:
        open_orders = [o for o in self.made_orders().values() if o.get("status") not in FINAL]
        if not open_orders:
            return None
        order = self.rng.choice(open_orders)
        status = self.rng.choice([3, 4, 5])  # completed, cancelled, or confirmed on the way
        return self.kiotviet_send("status", self.kiotviet(f"orders/{order['id']}/status", {"status": status}))

    def change_copy(self) -> Send | None:
        made = list(self.made_orders().values())
        if not made:
            return None
        return self.kiotviet_send("copy", self.kiotviet(f"orders/{self.rng.choice(made)['id']}/copy"))

    def change_abaha_customer(self) -> Send | None:
        """A shopper makes or edits their account; someone made at the counter edits the account
        the service made for them."""
        person = self.side_for("abaha")
        if person is None:
            return None
        kind = "customer.updated"
        if person.origin == "counter":
            made = [c for c in self.shop.abaha.customers.values() if c.get("kv_id") == person.kiotviet_id]
            if person.kiotviet_id is None or not made:
                return None
            person.abaha_id = int(made[0]["id"])
        elif person.abaha_id is None:
            person.abaha_id, kind = self.new_id(), "customer.created"
        person.name = f"Khách web {self.rng.randrange(10**6)}"
        body = {"name": person.name, "phone": self.rng.choice([person.phone, "+84" + person.phone[1:]]),
                "address": "12 Lý Thường Kiệt"}  # fmt: skip
        customer = self.abaha(f"customers/{person.abaha_id}", body)["customer"]
        return self.abaha_send("abaha_customer", kind, customer)

    def change_kiotviet_customer(self) -> Send | None:
        """Staff make or edit a customer at the counter; or edit the one the service made of a
        shopper's account."""
        person = self.side_for("kiotviet")
        if person is None:
            return None
        found = self.kiotviet_customer_of(person)
        if person.origin == "web" and found is None:
            return None
        person.kiotviet_id = found["id"] if found else self.new_id()
        person.name = f"Khách quầy {self.rng.randrange(10**6)}"
        body = {"name": person.name, "contactNumber": person.phone, "wardName": "Phường 1",
                "locationName": "Hà Nội - Quận Ba Đình"}  # fmt: skip
        return self.kiotviet_send("kiotviet_customer", self.kiotviet(f"customers/{person.kiotviet_id}", body))

    def side_for(self, side: str) -> Person | None:
        """Someone to edit on `side`: never someone edited on the other side within the last 1.5 s
        (Abaha's times are whole seconds: two sides within one second have no defined order)."""
        now = time.monotonic()
        ready = [p for p in self.people if p.last_side in ("", side) or now - p.last_at > 1.5]
        if not ready:
            return None
        person = self.rng.choice(ready)
        person.last_side, person.last_at = side, now
        return person

    def kiotviet_customer_of(self, person: Person) -> dict[str, Any] | None:
        with self.shop.retailer.lock:
            rows = [
                c for c in self.shop.retailer.customers.values() if local_phone(c.get("contactNumber")) == person.phone
            ]
        return min(rows, key=lambda c: c["id"]) if rows else None

    # -- the network

    def kiotviet_send(self, label: str, delivery: Delivery) -> Send:
        retailer = self.shop.retailer

        def go() -> list[int]:
            return [int(r["status"]) if str(r.get("status")).isdigit() else 0 for r in redeliver(retailer, delivery)]

        return Send(label, go, self.rng.randrange(1, 4))

    def abaha_send(self, label: str, kind: str, data: dict[str, Any]) -> Send:
        shop = self.stack.sandbox.abaha.shops[self.shop.shop_id]  # type: ignore[union-attr]
        event_id = f"evt_{self.new_id()}"
        frozen = json.loads(json.dumps(data))

        def go() -> list[int]:
            status = post_event(self.shop.shop_id, shop, kind, frozen, event_id)
            return [status if isinstance(status, int) else 0]

        return Send(label, go, self.rng.randrange(1, 4))

    def send_all(self, sends: list[Send]) -> None:
        """Every delivery its number of times, all shuffled; a sender retries what was not 2xx."""
        copies = [s for s in sends for _ in range(s.times)]
        self.rng.shuffle(copies)
        self.report.deliveries += len(sends)
        self.report.sends += len(copies)

        def one(send: Send) -> None:
            for attempt in range(10):
                if all(200 <= status < 300 for status in send.go()):
                    return
                with self.lock:
                    self.report.resends_needed += 1
                time.sleep(0.2 * (attempt + 1))
            raise AssertionError(f"the service never accepted a {send.label} delivery")

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(one, copies))

    # -- faults

    def break_peers(self, post_writes_too: bool) -> None:
        """10% of calls to each peer fail: refused (503), throttled (429, Retry-After), too slow
        (a timeout: the service waits PEER_READ_TIMEOUT), or failed after the work was done."""
        url = self.shop.sandbox_url
        self.calls_at_break = self.calls_so_far()
        for peer, after in (("kiotviet", 502), ("abaha", 500)):
            refusals: dict[str, Any] = {} if post_writes_too or peer == "abaha" else {"method": "GET"}
            for n, fault in enumerate([{"status": 503, **refusals}, {"status": 429, "retry_after": 1, **refusals},
                                       {"delay": 3}, {"status": after, "after_write": True}]):  # fmt: skip
                body = {"count": -1, "probability": 0.025, "seed": self.seed * 10 + n, **fault}
                requests.post(f"{url}/_sandbox/{peer}/faults", json=body, timeout=10).raise_for_status()

    def calls_so_far(self) -> tuple[int, int]:
        """KiotViet GETs and Abaha writes made for the shop so far (each may draw a fault)."""
        return self.shop.retailer.get_requests, len(self.shop.abaha.writes)

    def heal_peers(self) -> None:
        kiotviet_gets, abaha_writes = self.calls_so_far()
        self.report.calls_while_broken = {"kiotviet GETs": kiotviet_gets - self.calls_at_break[0],
                                          "abaha writes": abaha_writes - self.calls_at_break[1]}  # fmt: skip
        for peer in ("kiotviet", "abaha"):
            url = f"{self.shop.sandbox_url}/_sandbox/{peer}/faults"
            for fault in requests.get(url, timeout=10).json().get("faults", []):
                name = f"{peer} {fault.get('status') or 'slow'}{' after write' if fault.get('after_write') else ''}"
                self.report.faults_fired[name] = self.report.faults_fired.get(name, 0) + int(fault.get("fired", 0))
            requests.delete(url, timeout=10).raise_for_status()

    def kill_workers(self, stop: threading.Event, every: tuple[float, float]) -> None:
        """SIGKILL a worker (and the work horse it forked) every few seconds, and start another."""
        while not stop.wait(self.rng.uniform(*every)):
            victim = self.rng.choice(self.stack.workers)
            try:
                process = psutil.Process(victim.pid)
                for child in [*process.children(recursive=True), process]:
                    child.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
            victim.wait(timeout=10)
            self.stack.workers.remove(victim)
            self.stack.start_worker()
            self.report.kills += 1

    # -- the end

    def quiet(self) -> bool:
        """Nothing pending, leased, queued, running or scheduled; no order creation unsettled."""
        self.busy = self.still_busy()
        return self.busy is None

    def is_planner(self, job_id: str) -> bool:
        """The reconciliation planner's next tick: always scheduled, even with pulls off."""
        try:
            return Job.fetch(job_id, connection=self.redis, serializer=JSONSerializer).func_name == TICK
        except NoSuchJobError:
            return True  # gone meanwhile

    def still_busy(self) -> str | None:
        """What is still to do, in words, or None."""
        shop = self.shop.shop_id
        pending, leases = self.redis.zcard(keys.shop_key(shop, keys.PENDING_ORDER)), self.redis.zcard(keys.LEASES)
        inflight = self.redis.hlen(keys.shop_key(shop, keys.INFLIGHT))
        if pending or leases or inflight:
            return f"{pending} entities pending, {leases} leases, {inflight} in flight"
        for name in QUEUES:
            queue = Queue(name, connection=self.redis, serializer=JSONSerializer)
            started = StartedJobRegistry(queue=queue)  # type: ignore[no-untyped-call]
            scheduled = ScheduledJobRegistry(queue=queue)  # type: ignore[no-untyped-call]
            waiting = [j for j in scheduled.get_job_ids() if not self.is_planner(j)]
            if queue.count or started.count or waiting:
                return f"queue {name}: {queue.count} queued, {started.count} started, {len(waiting)} scheduled"
        orders = self.redis.hgetall(keys.shop_key(shop, keys.LINKS, "orders"))
        intents = [k for k, v in orders.items() if json.loads(v).get("state") == "intent"]  # type: ignore[union-attr]
        return f"order intents unsettled: {intents}" if intents else None

    def differences(self) -> list[str]:
        """What Abaha and KiotViet hold that the changes made do not explain."""
        return [*self.catalog_differences(), *self.order_differences(), *self.customer_differences()]

    def catalog_differences(self) -> Iterator[str]:
        retailer, abaha = self.shop.retailer, self.shop.abaha
        for product_id, row in retailer.products.items():
            written = abaha.products.get(str(product_id))
            if written is None:
                yield f"product {product_id} is not on Abaha"
                continue
            base_id = row.get("masterUnitId")
            base = retailer.products[base_id] if base_id not in (None, product_id) else row
            stock = next((max(0, int(i["onHand"] - i["reserved"])) for i in base["inventories"]
                          if i["branchId"] == BRANCH), 0)  # fmt: skip
            if base is not row:
                stock //= int(row.get("conversionValue") or 1)
            master = row.get("masterProductId")
            wanted = {"name": row["name"], "price": row["basePrice"], "category_kv_id": row.get("categoryId"),
                      "active": row.get("isActive") is not False and row.get("allowsSale") is not False,
                      "stock": stock, "master_kv_id": master if master not in (None, product_id) else None}  # fmt: skip
            for name, value in wanted.items():
                if written.get(name) != value:
                    yield f"product {product_id} {name}: Abaha {written.get(name)!r}, KiotViet {value!r}"
        for book_id, book in retailer.pricebooks.items():
            held = {int(p): v for p, v in abaha.prices.get(str(book_id), {}).items()}
            wanted_prices = {int(p): v for p, v in book.get("prices", {}).items()}
            if held != wanted_prices:
                extra = {p: (held.get(p), wanted_prices.get(p)) for p in set(held) | set(wanted_prices)
                         if held.get(p) != wanted_prices.get(p)}  # fmt: skip
                yield f"price book {book_id}: (Abaha, KiotViet) differ for {extra}"
        for category_id, category in retailer.categories.items():
            called = (abaha.categories.get(str(category_id)) or {}).get("name")
            if called != category["categoryName"]:
                yield f"category {category_id}: Abaha {called!r}, KiotViet {category['categoryName']!r}"

    def order_differences(self) -> Iterator[str]:
        with self.shop.retailer.lock:
            rows = list(self.shop.retailer.orders.values())
        for order_id in self.orders:
            made = [r for r in rows if f"[abaha:{order_id}]" in (r.get("description") or "") and r.get("orderDetails")]
            placed = self.shop.abaha.orders[str(order_id)]
            if order_id == self.bad_order:
                if made or placed.get("kiotviet"):
                    yield f"order {order_id} for an unknown product was made in KiotViet"
                continue
            originals = [r for r in made if r["orderDetails"] and not self.is_copy(r, rows)]
            if len(originals) != 1:
                self.report.duplicates.append(f"order {order_id}: {len(originals)} KiotViet orders")
                continue
            (original,) = originals
            if (placed.get("kiotviet") or {}).get("kv_order_id") != original["id"]:
                yield f"order {order_id} is linked to {placed.get('kiotviet')}, made as {original['id']}"
            wanted = FINAL.get(original.get("status") or 0, "new")
            if placed.get("status") != wanted:
                yield f"order {order_id}: Abaha {placed.get('status')!r}, KiotViet status {original.get('status')}"

    def is_copy(self, row: dict[str, Any], rows: list[dict[str, Any]]) -> bool:
        """A copy made by hand: a later order with the same description (the sandbox makes copies
        with the original's lines)."""
        return any(r["id"] < row["id"] and r.get("description") == row.get("description") for r in rows)

    def customer_differences(self) -> Iterator[str]:  # noqa: C901 - one check after another
        with self.shop.retailer.lock:
            rows = list(self.shop.retailer.customers.values())
        by_phone = Counter(local_phone(c.get("contactNumber")) for c in rows)
        for phone, count in by_phone.items():
            if phone and count > 1:
                self.report.duplicates.append(f"{count} KiotViet customers with phone {phone}")
        abaha_rows = list(self.shop.abaha.customers.values())
        for person in self.people:
            if person.abaha_id is None and person.kiotviet_id is None:
                continue
            kiotviet = self.kiotviet_customer_of(person)
            if kiotviet is None:
                yield f"{person.phone} has no KiotViet customer"
                continue
            if kiotviet.get("name") != person.name:
                yield f"{person.phone} is {kiotviet.get('name')!r} in KiotViet, last named {person.name!r}"
            if person.kiotviet_id is not None and not kiotviet.get("wardName"):
                yield f"{person.phone} lost its ward in KiotViet"
            # the person's Abaha customer is the one linked to theirs in KiotViet: a counter
            # customer mirrored to Abaha before the shopper opened an account with the same phone
            # stays an older copy (Abaha holds two customers; the service links the account)
            linked = self.redis.hget(keys.shop_key(self.shop.shop_id, keys.LINKS, "customers_by_kv"), kiotviet["id"])
            on_abaha = [c for c in abaha_rows if str(c.get("id")) == (linked or b"").decode()]  # type: ignore[union-attr]
            if not on_abaha:
                yield f"{person.phone} has no Abaha customer linked to KiotViet customer {kiotviet['id']}"
            for customer in on_abaha:
                if customer.get("name") != person.name:
                    yield f"{person.phone} is {customer.get('name')!r} on Abaha, last named {person.name!r}"

    def failed_changes(self) -> list[dict[str, Any]]:
        answer = self.stack.admin("GET", "/admin/failed")
        answer.raise_for_status()
        found: list[dict[str, Any]] = answer.json()["failed"]
        return found

    # -- secrets

    def secrets(self) -> dict[str, str]:
        retailer, sandbox = self.shop.retailer, self.stack.sandbox
        assert sandbox is not None
        found = {"ADMIN_TOKEN": self.stack.env["ADMIN_TOKEN"], "SECRET_KEY": self.stack.env["SECRET_KEY"],
                 "KiotViet client secret": retailer.client_secret, "Abaha API token": self.shop.abaha_token,
                 "Abaha webhook token": self.shop.saved["abaha_webhook"]["token"]}  # fmt: skip
        for hook in retailer.webhooks.values():
            found[f"webhook secret of {hook['type']}"] = hook["secret"]
        for n, (token, name) in enumerate(list(sandbox.kiotviet.tokens.items())):
            if name == retailer.name:
                found[f"KiotViet access token {n}"] = token
        return found

    def everything_said(self) -> Iterator[tuple[str, str]]:
        """Every log line, job (arguments, results, errors), stored value, metric, page and API
        answer of the run, as text."""
        assert self.stack.log_dir is not None
        for path in sorted(self.stack.log_dir.glob("*.log")):
            yield f"log {path.name}", path.read_text(errors="replace")
        for key in self.redis.scan_iter(count=1000):
            yield f"redis {key!r}", self.stored(key)
        bearer = {"Authorization": f"Bearer {self.stack.env['ADMIN_TOKEN']}"}
        yield "metrics", requests.get(f"{self.stack.url}/metrics", timeout=30, headers=bearer).text
        shop = self.shop.shop_id
        for route in ("/admin/connections", f"/admin/connections/{shop}", "/admin/failed", "/admin/rq/",
                      f"/admin/failed?shop_id={shop}", f"/admin/connections/{shop}/sync",
                      f"/admin/quarantine?shop_id={shop}", "/readyz", "/healthz"):  # fmt: skip
            yield f"answer {route}", self.stack.admin("GET", route).text
        yield from self.console_pages()

    def stored(self, key: bytes) -> str:
        kind = self.redis.type(key).decode()  # type: ignore[union-attr]
        values: list[bytes] = []
        if kind == "string":
            values = [self.redis.get(key) or b""]  # type: ignore[list-item]
        elif kind == "hash":
            values = [v for pair in self.redis.hgetall(key).items() for v in pair]  # type: ignore[union-attr, misc]
        elif kind == "list":
            values = list(self.redis.lrange(key, 0, -1))  # type: ignore[arg-type]
        elif kind in ("set", "zset"):
            values = list(self.redis.smembers(key) if kind == "set" else self.redis.zrange(key, 0, -1))  # type: ignore[arg-type]
        texts = []
        for value in values:
            with contextlib.suppress(zlib.error):
                value = zlib.decompress(value)  # RQ keeps a job's arguments compressed
            texts.append(value.decode(errors="replace"))
        return "\n".join(texts)

    def console_pages(self) -> Iterator[tuple[str, str]]:
        """The operator console's pages, signed in as an operator."""
        browser = requests.Session()
        login = browser.get(f"{self.stack.url}/admin/login", timeout=30)
        token = _csrf(login.text)
        form = {"csrf_token": token, "token": self.stack.env["ADMIN_TOKEN"], "next": "/admin/"}
        signed = browser.post(
            f"{self.stack.url}/admin/login", data=form, headers={"Origin": self.stack.url}, timeout=30
        )
        yield "console sign-in", signed.text
        shop = self.shop.shop_id
        for path in ("/admin/", f"/admin/shops/{shop}/edit", f"/admin/shops/{shop}/failed",
                     f"/admin/shops/{shop}/quarantine", f"/admin/shops/{shop}/sync", "/admin/shops/new"):  # fmt: skip
            page = browser.get(self.stack.url + path, timeout=30)
            assert page.status_code == 200, (path, page.status_code)
            yield f"page {path}", page.text


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"', page)
    assert found, "no CSRF token on the sign-in page"
    return found.group(1) or found.group(2)
