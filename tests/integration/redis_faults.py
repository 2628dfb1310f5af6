"""A stream of signed KiotViet deliveries sent the way KiotViet sends them (a 503 is retried, the
same delivery `Id` with the next `Attempt`) while a test breaks Redis, and what the shop must hold
once the service has caught up.

Every change edits a product the stream has not touched yet, so each change is its product's last:
one accepted and then lost would leave Abaha with another price or stock than KiotViet's.
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import redis
import requests
from rq.job import Job
from rq.registry import FailedJobRegistry, StartedJobRegistry
from rq.serializers import JSONSerializer

from adapters.inbox import QUEUES, event_queue
from sandbox.kiotviet_data import grow_catalogue
from tests.integration.conftest import Shop
from tests.integration.redis_servers import poll

FIRST_PRODUCT = 200_000
BRANCH = 11
RETRY_SECONDS = 0.5  # KiotViet's own schedule is not published; sooner only makes the test shorter


@dataclass
class DeliveryStream:
    """Senders that change one fresh product each and deliver it until it is accepted."""

    shop: Shop
    products: int = 2000
    senders: int = 4
    pace_seconds: float = 0.05
    answers: Counter[str] = field(default_factory=Counter)
    accepted: int = 0
    changed: list[int] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __post_init__(self) -> None:
        grow_catalogue(self.shop.retailer, products=self.products, first_id=FIRST_PRODUCT)
        self._next = itertools.count(FIRST_PRODUCT)

    def start(self) -> DeliveryStream:
        for n in range(self.senders):
            thread = threading.Thread(target=self._send_changes, name=f"sender{n}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def finish(self) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(timeout=90)
        assert not any(t.is_alive() for t in self._threads), "a sender could not deliver its change"

    def wait_accepted(self, more: int, deadline: float = 60) -> None:
        """Until `more` changes beyond those accepted now are accepted."""
        target = self.accepted + more
        poll(lambda: self.accepted >= target, deadline, f"{more} more changes were not accepted")

    def _send_changes(self) -> None:
        while not self.stop.is_set():
            with self._lock:
                product_id = next(self._next)
            assert product_id < FIRST_PRODUCT + self.products, "the stream ran out of fresh products"
            self._change(product_id)
            self.stop.wait(self.pace_seconds)

    def _change(self, product_id: int) -> None:
        n = product_id - FIRST_PRODUCT
        self._deliver(f"products/{product_id}", {"basePrice": 50_000 + n * 10, "isActive": True, "allowsSale": True})
        if n % 3 == 0:  # a sale or a receipt after the edit: a stock item, read back from KiotViet
            self._deliver(f"products/{product_id}/stock", {"branchId": BRANCH, "onHand": n % 50, "reserved": n % 4})
        with self._lock:
            self.accepted += 1
            self.changed.append(product_id)

    def _deliver(self, path: str, body: dict[str, Any]) -> None:
        """Make the change in KiotViet, then send its delivery until the service takes it."""
        base = f"{self.shop.sandbox_url}/_sandbox/kiotviet/{self.shop.retailer.name}"
        made = requests.post(f"{base}/{path}", params={"deliver": "0"}, json=body, timeout=30)
        made.raise_for_status()
        delivery_id = made.json()["delivery"]["id"]
        while True:
            sent = requests.post(f"{base}/deliveries/{delivery_id}/redeliver", timeout=30)
            sent.raise_for_status()
            status = str(sent.json()["delivered"][0]["status"])
            with self._lock:
                self.answers[status] += 1
            if status == "200":
                return
            # a sender keeps its undelivered change even when the test stops asking for more
            threading.Event().wait(RETRY_SECONDS)


def expected_product(shop: Shop, product_id: int) -> dict[str, Any]:
    """What Abaha must show for the product: KiotViet's price and sellable stock now."""
    with shop.retailer.lock:
        row = shop.retailer.products[product_id]
        stock = next((i for i in row["inventories"] if i["branchId"] == BRANCH), {"onHand": 0, "reserved": 0})
        return {"price": row["basePrice"], "stock": max(0, stock["onHand"] - stock["reserved"]), "active": True}


def differences(shop: Shop, product_ids: list[int]) -> dict[int, tuple[Any, Any]]:
    """Products whose Abaha state is not what KiotViet holds: (expected, found)."""
    found: dict[int, tuple[Any, Any]] = {}
    for product_id in product_ids:
        expected = expected_product(shop, product_id)
        held = shop.abaha.products.get(str(product_id))
        actual = {k: held.get(k) for k in expected} if held else None
        if actual != expected:
            found[product_id] = (expected, actual)
    return found


def wait_converged(shop: Shop, product_ids: list[int], deadline: float = 120) -> None:
    """Until Abaha holds KiotViet's state of every product, or fail naming a few that differ."""
    try:
        poll(lambda: not differences(shop, product_ids), deadline, "Abaha did not catch up with KiotViet")
    except AssertionError as exc:
        left = differences(shop, product_ids)
        raise AssertionError(f"{exc}: {len(left)} products differ, e.g. {list(left.items())[:3]}") from exc


def failed_jobs(connection: redis.Redis) -> Counter[str]:
    """Failed jobs by function. A drain holds no change of its own (an interrupted one's batch goes
    back to pending when its lease lapses), so only the other kinds are changes an operator replays."""
    found: Counter[str] = Counter()
    for name in QUEUES:
        registry = FailedJobRegistry(queue=event_queue(connection, name))
        for job in Job.fetch_many(registry.get_job_ids(), connection=connection, serializer=JSONSerializer):
            found[(job.func_name if job else None) or "(expired)"] += 1
    return found


def started_jobs(connection: redis.Redis) -> int:
    return sum(StartedJobRegistry(queue=event_queue(connection, name)).count for name in QUEUES)
