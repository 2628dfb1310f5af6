"""Changes applied in batches over real HTTP: a storm coalesces to KiotViet's exact final state, one
refused item fails alone and its replay applies it once, a worker killed mid-batch loses and
doubles nothing, and one shop's storm does not hold back another shop's change."""

from __future__ import annotations

import json
import os
import random
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import psutil
import pytest
import redis
import requests
from rq import Worker

from sandbox.abaha import Fault
from sandbox.abaha_sales import post_event
from sandbox.kiotviet_catalog import rest_product, share_stock
from sandbox.kiotviet_data import Retailer, grow_catalogue, now_text, pascal
from sandbox.kiotviet_http import parse_time
from sandbox.stack import LocalStack
from tests.helpers import sample, wait_for
from tests.integration.conftest import Shop, connect_shop, log_text
from workers.__main__ import MAINTENANCE_SECONDS
from workers.drain import LEASE_MS

pytestmark = pytest.mark.integration
BRANCH = 11
BOOK = 201
Items = dict[str, list[dict[str, Any]]]
RESTART_SECONDS = 15


def held(shop: Shop, changes: list[tuple[str, dict[str, Any]]]) -> Items:
    """Make each change in KiotViet, holding its webhook: the items, by type."""
    items: Items = {}
    with requests.Session() as session:
        for path, body in changes:
            url = f"{shop.sandbox_url}/_sandbox/kiotviet/{shop.retailer.name}/{path}?deliver=0"
            answer = session.post(url, json=body, timeout=30)
            answer.raise_for_status()
            delivery = answer.json()["delivery"]
            for notification in delivery["body"]["Notifications"]:
                items.setdefault(delivery["type"], []).extend(notification["Data"])
    return items


def bundles(shop: Shop, items: Items, size: int = 100) -> list[tuple[str, bytes]]:
    """The items as KiotViet bundles them: up to `size` a delivery, one type per delivery."""
    out = []
    for kind, listed in items.items():
        for start in range(0, len(listed), size):
            body = {"Id": str(uuid.uuid4()), "Attempt": 1,
                    "Notifications": [{"Action": f"{kind}.{shop.retailer.retailer_id}",
                                       "Data": listed[start : start + size]}]}  # fmt: skip
            out.append((kind, json.dumps(body, ensure_ascii=False).encode()))
    return out


def send(shop: Shop, deliveries: list[tuple[str, bytes]], threads: int = 4) -> None:
    """Deliver each raw body, signed as the simulated KiotViet signs, several at a time."""
    base = f"{shop.sandbox_url}/_sandbox/kiotviet/{shop.retailer.name}/deliveries"

    def post(delivery: tuple[str, bytes]) -> None:
        answer = requests.post(f"{base}?type={delivery[0]}", data=delivery[1], timeout=60)
        answer.raise_for_status()
        statuses = [d["status"] for d in answer.json()["delivered"]]
        assert statuses == [200], statuses

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(post, deliveries))


def sellable(retailer: Retailer, product: dict[str, Any]) -> int:
    row = next((i for i in product["inventories"] if i["branchId"] == BRANCH), None)
    return max(0, int(row["onHand"] - row["reserved"])) if row else 0


def kiotviet_view(retailer: Retailer, product_ids: list[int]) -> dict[int, dict[str, Any]]:
    """What Abaha must show of each product, from what KiotViet holds."""
    with retailer.lock:
        return {
            pid: {
                "sku": p["code"],
                "name": p["name"],
                "price": p["basePrice"],
                "stock": sellable(retailer, p),
                "active": p["isActive"] and p["allowsSale"],
                "source_modified_at": parse_time(p["modifiedDate"]),
                "book_price": retailer.pricebooks[BOOK]["prices"].get(pid),
            }  # fmt: skip
            for pid in product_ids
            for p in [retailer.products[pid]]
        }


def abaha_view(shop: Shop, product_ids: list[int]) -> dict[int, dict[str, Any] | None]:
    fields = ("sku", "name", "price", "stock", "active", "source_modified_at")
    out: dict[int, dict[str, Any] | None] = {}
    for pid in product_ids:
        product = shop.abaha.products.get(str(pid))
        prices = shop.abaha.prices.get(str(BOOK), {})
        if product is None:
            out[pid] = None
            continue
        view = {f: product.get(f) for f in fields}
        stamp = view["source_modified_at"]
        view["source_modified_at"] = parse_time(stamp) if stamp else None
        out[pid] = {**view, "book_price": prices.get(str(pid))}
    return out


def differences(shop: Shop, product_ids: list[int], prices: bool = True) -> dict[int, tuple[Any, Any]]:
    """Products whose Abaha state differs from KiotViet's: (KiotViet's, Abaha's)."""
    want, have = kiotviet_view(shop.retailer, product_ids), abaha_view(shop, product_ids)
    if not prices:
        want = {pid: {**view, "book_price": None} for pid, view in want.items()}
    return {pid: (want[pid], have[pid]) for pid in product_ids if want[pid] != have[pid]}


def settled(shop: Shop, product_ids: list[int], deadline: float, prices: bool = True) -> dict[int, tuple[Any, Any]]:
    """Poll until Abaha shows KiotViet's state for every product, or the deadline passes: what
    still differs (nothing, when it settled)."""
    end = time.monotonic() + deadline
    while (left := differences(shop, product_ids, prices)) and time.monotonic() < end:
        time.sleep(0.5)
    return dict(list(left.items())[:3])


def product_writes(shop: Shop) -> Counter[str]:
    """How often Abaha was given each product (a PUT or PATCH, alone or an item of a batch call)."""
    counted: Counter[str] = Counter()
    for write in list(shop.abaha.writes):
        method, _, rest = write.partition(" ")
        path = rest.split(" (")[0]
        if method in ("PUT", "PATCH") and path.startswith("/products/"):
            counted[path.removeprefix("/products/")] += 1
    return counted


def log_records(stack: LocalStack, event: str, shop_id: str) -> list[dict[str, Any]]:
    found = []
    for line in log_text(stack).splitlines():
        if event not in line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("event") == event and record.get("shop_id") == shop_id:
            found.append(record)
    return found


def batches_of(stack: LocalStack, shop_id: str) -> int:
    """How many batches (and changes applied alone) the workers applied for the shop."""
    drains = [r for r in log_records(stack, "drain.done", shop_id) if r.get("entities")]
    return len(drains) + len(log_records(stack, "change.done", shop_id))


def quiet(shop: Shop) -> bool:
    """Nothing of the shop's waits to be taken into a batch."""
    return bool(shop.stack.admin("GET", f"/admin/connections/{shop.shop_id}").json()["state"]["pending"] == 0)


def add_products(shop: Shop, count: int, first_id: int) -> list[int]:
    with shop.retailer.lock:
        grow_catalogue(shop.retailer, products=count, first_id=first_id)
    return list(range(first_id, first_id + count))


def storm_changes(ids: list[int], per_product: int, rng: random.Random) -> list[tuple[str, dict[str, Any]]]:
    """Stock, price and product edits, `per_product` of them for each product, interleaved."""
    changes: list[tuple[str, dict[str, Any]]] = []
    for n in range(per_product):
        for pid in ids:
            roll = rng.random()
            if n == 0:  # every product's body and price are delivered at least once
                changes.append((f"pricebooks/{BOOK}/prices/{pid}", {"price": rng.randrange(10, 500) * 1000}))
            if n == 0 or roll < 0.2:
                changes.append((f"products/{pid}", {"basePrice": rng.randrange(10, 500) * 1000,
                                                    "name": f"Sản phẩm {pid} v{n}"}))  # fmt: skip
            elif roll < 0.8:
                on_hand = rng.randrange(0, 60)
                changes.append((f"products/{pid}/stock", {"branchId": BRANCH, "onHand": on_hand,
                                                          "reserved": rng.randrange(0, 5)}))  # fmt: skip
            else:
                changes.append((f"pricebooks/{BOOK}/prices/{pid}", {"price": rng.randrange(10, 500) * 1000}))
    return changes


def test_a_storm_coalesces_to_kiotviets_exact_final_state(stack: LocalStack) -> None:
    shop = connect_shop(stack)
    ids = add_products(shop, 30, 210_000)
    rng = random.Random(10)  # noqa: S311 - a reproducible storm, not secrecy
    changes = storm_changes(ids, 40, rng)
    items = held(shop, changes)
    deliveries = bundles(shop, items)
    rng.shuffle(deliveries)  # versions, not arrival, order the result
    deliveries += rng.sample(deliveries, 3)  # and a few delivered twice
    started = time.monotonic()
    send(shop, deliveries)
    assert settled(shop, ids, deadline=120) == {}
    drained = time.monotonic() - started
    wait_for(lambda: quiet(shop))
    writes = product_writes(shop)
    batches = batches_of(stack, shop.shop_id)
    total = sum(writes[str(pid)] for pid in ids)
    print(f"\nstorm: {len(changes)} changes over {len(ids)} products in {len(deliveries)} deliveries; "
          f"{total} product writes in {batches} batches; exact after {drained:.1f} s")  # fmt: skip
    # one write per entity (the product's body, its stock) per batch, whatever the storm's size
    assert all(writes[str(pid)] <= 2 * batches for pid in ids), writes
    assert total * 4 <= len(changes), (total, len(changes))
    assert shop.counts()["failed"] == 0


def test_a_flash_sale_of_6000_stock_changes_costs_a_write_per_product_per_batch(stack: LocalStack) -> None:
    shop = connect_shop(stack)
    ids = add_products(shop, 60, 220_000)
    with shop.retailer.lock:  # Abaha has the products already: the sale moves stock only
        bodies = [{**pascal(rest_product(shop.retailer, shop.retailer.products[pid])), "MasterProductId": None,
                   "MasterUnitId": None} for pid in ids]  # fmt: skip
    send(shop, bundles(shop, {"product.update": bodies}))
    assert settled(shop, ids, deadline=60, prices=False) == {}
    before, batches_before = product_writes(shop), batches_of(stack, shop.shop_id)
    rng = random.Random(60)  # noqa: S311 - a reproducible sale, not secrecy
    started = time.monotonic()
    for _ in range(60):  # KiotViet's stock moves while its deliveries are being applied
        items = []
        with shop.retailer.lock:
            for pid in rng.choices(ids, k=100):
                product = shop.retailer.products[pid]
                row = next(i for i in product["inventories"] if i["branchId"] == BRANCH)
                row["onHand"] = max(0, row["onHand"] + rng.choice((-3, -2, -1, -1, 5)))
                share_stock(shop.retailer, pid, now_text())
                items.append({"ProductId": pid, "ProductCode": product["code"], "BranchId": BRANCH,
                              "OnHand": row["onHand"], "Reserved": row["reserved"]})  # fmt: skip
        send(shop, bundles(shop, {"stock.update": items}), threads=1)
    assert settled(shop, ids, deadline=120, prices=False) == {}
    drained = time.monotonic() - started
    wait_for(lambda: quiet(shop))
    after = product_writes(shop)
    writes = {pid: after[str(pid)] - before[str(pid)] for pid in ids}
    batches = batches_of(stack, shop.shop_id) - batches_before
    print(f"\nflash sale: 6000 stock changes over {len(ids)} products in 60 deliveries; {sum(writes.values())} "
          f"Abaha writes in {batches} batches; exact {drained:.1f} s after the first delivery")  # fmt: skip
    # one write per product per batch: as many batches as the drains took while the sale went on
    # (each applied at once: no change waits for a batch to fill), never one write per change
    assert all(count <= batches for count in writes.values()), writes
    assert batches < 60 and sum(writes.values()) < 6000 / 2


def test_one_refused_item_fails_alone_and_its_replay_applies_it_once(stack: LocalStack) -> None:
    shop = connect_shop(stack)
    shop.abaha.refused_skus["SP000124"] = "SKU đang chờ duyệt"
    items = held(shop, [("products/3001", {"basePrice": 180000}), ("products/3002", {"basePrice": 260000})])
    send(shop, bundles(shop, items))  # one delivery: both products in one batch
    failed = wait_for(lambda: stack.admin("GET", f"/admin/failed?shop_id={shop.shop_id}").json()["failed"])
    assert shop.abaha.products["3001"]["price"] == 180000
    assert "3002" not in shop.abaha.products
    (change,) = failed
    assert (change["type"], change["entity_id"]) == ("product.update", "3002")
    assert "SKU đang chờ duyệt" in change["message"] and "SP000124" in change["message"]
    drains = wait_for(lambda: [r for r in log_records(stack, "drain.done", shop.shop_id) if r.get("entities")])
    # the refusal was one item of the batch that applied the other (a later batch reads 3001's stock)
    assert [d["kinds"] for d in drains if "product" in d["kinds"]] == [{"product": 2}], drains
    del shop.abaha.refused_skus["SP000124"]
    answer = stack.admin("POST", "/admin/failed/requeue", json={"job_id": change["job_id"]})
    assert answer.json() == {"requeued": 1, "job_ids": [change["job_id"]]}
    wait_for(lambda: shop.abaha.products.get("3002"))
    assert shop.abaha.products["3002"]["price"] == 260000
    # a later change of the shop is applied after the replay: a second write had every chance by then
    shop.kiotviet_change("categories/107", {"categoryName": "Mũ"})
    wait_for(lambda: shop.abaha.categories.get("107"))
    assert product_writes(shop)["3002"] == 1
    assert stack.admin("GET", f"/admin/failed?shop_id={shop.shop_id}").json()["failed"] == []
    assert stack.admin("POST", "/admin/failed/requeue", json={"job_id": change["job_id"]}).json()["requeued"] == 0


@pytest.fixture
def lone_worker_stack(tmp_path: Path) -> Iterator[LocalStack]:
    """A stack of its own with one worker: every job waits its turn behind the others, and a
    test can kill the worker without touching other tests."""
    environ = {key: value for key, value in os.environ.items()
               if key not in ("REDIS_URL", "KIOTVIET_API_URL", "ABAHA_API_URL", "PUBLIC_BASE_URL")}  # fmt: skip
    environ.update(LOG_FORMAT="json", RECONCILE_INTERVAL="0")
    running = LocalStack(tmp_path, environ=environ, private_redis=True, log_dir=tmp_path / "logs").start(workers=1)
    yield running
    running.stop()


def test_a_shops_single_change_is_applied_while_another_shop_drains_a_storm(lone_worker_stack: LocalStack) -> None:
    stack = lone_worker_stack
    assert stack.sandbox is not None
    busy, other = connect_shop(stack), connect_shop(stack)
    ids = add_products(busy, 1500, 300_000)
    with busy.retailer.lock:
        # bodies that say each row is neither a variant nor a unit row, so none is read again
        bodies = [{**pascal(rest_product(busy.retailer, busy.retailer.products[pid])), "MasterProductId": None,
                   "MasterUnitId": None} for pid in ids]  # fmt: skip
    stock = [{"ProductId": pid, "BranchId": BRANCH, "OnHand": 1, "Reserved": 0} for pid in ids]
    # Abaha answers the busy shop's product calls late, so its storm takes a while to drain
    stack.sandbox.abaha.faults.append(Fault(status=None, count=-1, delay=0.5,
                                            path_contains=f"/shops/{busy.shop_id}/products"))  # fmt: skip
    started = time.monotonic()
    with ThreadPoolExecutor(1) as pool:  # the storm's deliveries go on while the other shop's change comes
        storm = pool.submit(send, busy, bundles(busy, {"product.update": bodies, "stock.update": stock}))
        wait_for(lambda: busy.abaha.products, deadline=60)  # the storm is being applied
        sent = time.monotonic()
        other.kiotviet_change("products/3001", {"basePrice": 199000})
        wait_for(lambda: (other.abaha.products.get("3001") or {}).get("price") == 199000, deadline=60, interval=0.1)
        waited = time.monotonic() - sent
        applied = sum(1 for pid in ids if str(pid) in busy.abaha.products)
        storm.result()
    assert applied < len(ids)  # the one worker took the other shop's change before the storm was through
    assert settled(busy, ids, deadline=150, prices=False) == {}
    print(f"\nfairness, one worker: the other shop's change applied {waited:.1f} s after it was sent, when "
          f"{applied} of {len(ids)} storm products were; the storm ({2 * len(ids)} events) took "
          f"{time.monotonic() - started:.1f} s")  # fmt: skip


def kill_busy_worker(stack: LocalStack) -> None:
    """SIGKILL the worker applying a job, and its work horse: as when its machine dies."""
    connection = redis.Redis.from_url(stack.env["REDIS_URL"])
    (busy,) = wait_for(lambda: [w for w in Worker.all(connection=connection) if w.get_current_job_id()])
    worker = psutil.Process(busy.pid)
    for process in [*worker.children(recursive=True), worker]:
        process.send_signal(signal.SIGKILL)
    for popen in [p for p in stack.workers if p.pid == busy.pid]:
        popen.wait(timeout=10)
        stack.workers.remove(popen)


def order_and_customers(shop: Shop) -> dict[str, Any]:
    """An Abaha order, an Abaha customer and a KiotViet customer, each made without its event yet
    sent; answers the events to send to the service."""
    order = {**sample("abaha/order.created")["data"], "id": 91001, "code": "DH91001"}
    base = f"{shop.sandbox_url}/_sandbox/abaha/shops/{shop.shop_id}"
    requests.post(f"{base}/orders?deliver=0", json=order, timeout=10).raise_for_status()
    customer = requests.post(f"{base}/customers/5901?deliver=0", json={"name": "Phạm Thu Hà",
                             "phone": "0977000111"}, timeout=10).json()["customer"]  # fmt: skip
    kiotviet = held(shop, [("customers/7901", {"name": "Đỗ Minh Khôi", "contactNumber": "0966000222"})])
    return {"order": order, "customer": customer, "kiotviet": kiotviet}


def kiotviet_customers(shop: Shop, phone: str) -> list[dict[str, Any]]:
    with shop.retailer.lock:
        return [c for c in shop.retailer.customers.values() if c.get("contactNumber") == phone]


@pytest.mark.slow
def test_a_worker_killed_mid_batch_loses_nothing_and_doubles_nothing(lone_worker_stack: LocalStack) -> None:
    stack = lone_worker_stack
    assert stack.sandbox is not None
    shop = connect_shop(stack)
    ids = add_products(shop, 100, 400_000)
    with shop.retailer.lock:
        bodies = [{**pascal(rest_product(shop.retailer, shop.retailer.products[pid])), "MasterProductId": None,
                   "MasterUnitId": None} for pid in ids]  # fmt: skip
    products = f"/shops/{shop.shop_id}/products:batch"
    # the first batch's write is slow, so what comes meanwhile waits to be taken as one batch;
    # the second's never comes back (503 after 60 s): the worker is killed while it waits
    first = Fault(status=None, count=1, delay=3, path_contains=products, method="PUT")
    hung = Fault(status=503, count=1, delay=60, path_contains=products, method="PUT")
    stack.sandbox.abaha.faults += [first, hung]
    shop.kiotviet_change("products/3001", {"basePrice": 155000})
    wait_for(lambda: first.fired)
    made = order_and_customers(shop)
    send(shop, bundles(shop, {"product.update": bodies, **made["kiotviet"]}))
    post_event(shop.shop_id, shop.abaha, "order.created", made["order"])
    post_event(shop.shop_id, shop.abaha, "customer.created", made["customer"])
    wait_for(lambda: hung.fired, deadline=30)
    kill_busy_worker(stack)
    killed = time.monotonic()
    time.sleep(RESTART_SECONDS)  # the time a supervisor takes to start another worker (not a wait for work)
    stack.start_worker()
    assert settled(shop, ids, deadline=240, prices=False) == {}
    recovered = time.monotonic() - killed
    # its batch is pending again when the lease lapses, and the next maintenance pass of a live
    # worker (or the planner's tick) starts a drain; the dead worker held RQ's scheduler lock
    bound = LEASE_MS / 1000 + MAINTENANCE_SECONDS
    print(f"\nkilled mid-batch: its {len(ids)} products applied {recovered:.1f} s after SIGKILL, a worker "
          f"restarted after {RESTART_SECONDS} s (lease {LEASE_MS / 1000:.0f} s + maintenance "
          f"{MAINTENANCE_SECONDS} s = {bound:.0f} s)")  # fmt: skip
    assert recovered < bound + 10
    link = wait_for(lambda: shop.abaha.orders[str(made["order"]["id"])].get("kiotviet"), deadline=60)
    orders = [o for o in shop.retailer.orders.values() if "[abaha:91001]" in (o.get("description") or "")]
    assert [o["id"] for o in orders] == [link["kv_order_id"]]
    for phone in ("0977000111", "0912345678"):  # the Abaha customer, the order's customer
        assert len(wait_for(partial(kiotviet_customers, shop, phone))) == 1
    wait_for(lambda: [c for c in shop.abaha.customers.values() if c.get("kv_id") == 7901])
    assert len([c for c in shop.abaha.customers.values() if c.get("phone") == "0966000222"]) == 1
    assert stack.admin("GET", f"/admin/failed?shop_id={shop.shop_id}").json()["failed"] == []
