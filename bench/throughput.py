"""Benchmark: events applied per second per worker process, against RQ's empty-job rate with
the same worker configuration, for 1, 2 and 4 workers; and what a flash sale costs in Abaha writes.

For each worker count, on one running service with S connected shops:
- baseline: that many workers of the service (`python -m workers`) drain empty RQ jobs;
- flash sale: each shop gets C stock changes over P products (deliveries of 100 items, each
  item a new stock value set in the simulated KiotViet first); Abaha writes counted, and the
  final stock on Abaha checked equal to KiotViet's for every product;
- catalog-wide: each shop gets one `product.update` for each of N distinct products (nothing to
  coalesce: batching alone), the final names checked;
- orders: each shop gets K Abaha `order.created` events, each one KiotViet order (checked: one
  order per Abaha order, linked back).
Every storm is ingested with no worker running; then the workers start, and the time runs from
the first job a worker takes (start-up left out, as for the baseline) until nothing is pending.

    .venv/bin/python -m bench.throughput [--workers 1 2 4] [--shops 8] [--changes 6000] [--orders 40]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import itertools
import json
import random
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from rq import Queue
from rq.serializers import JSONSerializer

from bench.harness import (
    BenchShop,
    CpuUse,
    connect,
    empty_job_rate,
    first_job_taken,
    redis_of,
    running_stack,
    wait_idle,
    write_result,
)
from sandbox.kiotviet_catalog import rest_product
from sandbox.kiotviet_data import now_text, pascal
from sandbox.stack import LocalStack

ITEMS_PER_DELIVERY = 100
PRODUCT_WRITE = re.compile(r"^(PUT|PATCH) /products/\d+")
_ids = itertools.count(1)
_orders = itertools.count(700_001)
Post = Callable[[], int]


def flash_sale(shop: BenchShop, changes: int, products: int, rng: random.Random) -> list[Post]:
    """Stock changes over the shop's first `products` products, set in KiotViet as they are made."""
    posts: list[Post] = []
    for start in range(0, changes, ITEMS_PER_DELIVERY):
        items = [shop.set_stock(rng.choice(shop.product_ids[:products]), rng.randint(0, 500), rng.randint(0, 3))
                 for _ in range(min(ITEMS_PER_DELIVERY, changes - start))]  # fmt: skip
        delivery = f"flash-{next(_ids)}"
        posts.append(lambda items=items, delivery=delivery: shop.post("stock.update", items, delivery))  # type: ignore[misc]
    return posts


def catalog_wide(shop: BenchShop, count: int, round_: int) -> list[Post]:
    """One `product.update` for each of `count` distinct products: a new name and price."""
    posts: list[Post] = []
    ids = shop.product_ids[:count]
    for start in range(0, len(ids), ITEMS_PER_DELIVERY):
        data = []
        with shop.retailer.lock:
            for pid in ids[start : start + ITEMS_PER_DELIVERY]:
                product = shop.retailer.products[pid]
                product.update(name=f"Sản phẩm {pid} đợt {round_}", basePrice=product["basePrice"] + 1000,
                               modifiedDate=now_text())  # fmt: skip
                data.append(pascal(rest_product(shop.retailer, product)))
        delivery = f"catalog-{next(_ids)}"
        posts.append(lambda data=data, delivery=delivery: shop.post("product.update", data, delivery))  # type: ignore[misc]
    return posts


def abaha_orders(shop: BenchShop, count: int) -> list[Post]:
    """Orders placed on the shop's website, each posted to the service as Abaha posts it."""
    posts: list[Post] = []
    product = shop.retailer.products[shop.product_ids[0]]
    for _ in range(count):
        number = next(_orders)
        stamp = now_text()[:19] + "+07:00"
        order = {"id": number, "code": f"DH{number}", "status": "new", "created_at": stamp, "updated_at": stamp,
                 "customer": {"id": 555, "name": "Nguyễn Văn An", "phone": "0912345678", "email": None,
                              "address": "12 Lý Thường Kiệt", "province": "Hà Nội"},
                 "items": [{"sku": product["code"], "kv_product_id": product["id"], "name": product["name"],
                            "quantity": 1, "unit_price": product["basePrice"], "discount": 0}],
                 "discount": 0, "shipping_fee": 30000, "other_fees": [], "total": product["basePrice"] + 30000,
                 "payment_method": "cod", "note": ""}  # fmt: skip
        shop.abaha.orders[str(number)] = order
        body = json.dumps({"id": f"evt_{number}", "type": "order.created", "shop_id": shop.shop_id,
                           "occurred_at": stamp, "data": order}, ensure_ascii=False).encode()  # fmt: skip
        digest = hmac.new(shop.abaha_token.encode(), body, hashlib.sha256).hexdigest()
        headers = {"Content-Type": "application/json", "X-Abaha-Token": shop.abaha_token,
                   "X-Abaha-Signature": f"sha256={digest}"}  # fmt: skip
        posts.append(lambda body=body, headers=headers: abaha_post(shop, body, headers))  # type: ignore[misc]
    return posts


def abaha_post(shop: BenchShop, body: bytes, headers: dict[str, str]) -> int:
    url = f"{shop.stack.url}/webhooks/abaha/{shop.shop_id}"
    return shop.session().post(url, data=body, headers=headers, timeout=30).status_code


def ingest(posts: list[Post]) -> float:
    """Send every delivery (8 at a time); seconds taken."""
    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda post: post(), posts))
    bad = [s for s in statuses if s not in (200, 202)]
    assert not bad, bad[:5]
    return time.perf_counter() - started


def drain(stack: LocalStack, shops: list[BenchShop], workers: int) -> tuple[float, dict[str, float]]:
    """Start `workers` workers on what is queued; seconds from the first job taken until idle,
    and the CPU seconds each part used meanwhile."""
    connection = redis_of(stack)
    queued = Queue("events", connection=connection, serializer=JSONSerializer).count
    running = [stack.start_worker() for _ in range(workers)]
    try:
        started = first_job_taken(connection, queued)
        cpu = CpuUse(stack).start()
        ended = wait_idle(stack, [s.shop_id for s in shops])
        used = cpu.stop()
    finally:
        for worker in running:
            stack.stop_worker(worker)
    return ended - started, used


def product_writes(shop: BenchShop, since: int) -> tuple[int, int]:
    """(product writes, write calls) Abaha received for the shop since its `since`-th write."""
    writes = shop.abaha.writes[since:]
    items = sum(1 for w in writes if PRODUCT_WRITE.match(w))
    calls = sum(1 for w in writes if not w.endswith("(batch)"))
    return items, calls


def run_flash(stack: LocalStack, shops: list[BenchShop], workers: int, args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(workers)  # noqa: S311 - a load, not a secret
    marks = {s.shop_id: len(s.abaha.writes) for s in shops}
    posts = [p for s in shops for p in flash_sale(s, args.changes, args.products, rng)]
    ingest_seconds = ingest(posts)
    gets_before = sum(s.retailer.get_requests for s in shops)
    seconds, cpu = drain(stack, shops, workers)
    gets = sum(s.retailer.get_requests for s in shops) - gets_before
    counted = [product_writes(s, marks[s.shop_id]) for s in shops]
    wrong = sum(1 for s in shops for pid in s.product_ids[: args.products]
                if s.abaha_stock().get(pid) != s.sellable(pid))  # fmt: skip
    events = args.changes * len(shops)
    return {"events": events, "ingest_seconds": round(ingest_seconds, 2), "drain_seconds": round(seconds, 3),
            "cpu_seconds_during_drain": cpu, "kiotviet_gets_per_shop": round(gets / len(shops), 1),
            "events_per_second": round(events / seconds, 1),
            "events_per_second_per_worker": round(events / seconds / workers, 1),
            "abaha_product_writes_per_shop": max(c[0] for c in counted),
            "abaha_write_calls_per_shop": max(c[1] for c in counted),
            "products_with_wrong_final_stock": wrong}  # fmt: skip


def run_catalog(stack: LocalStack, shops: list[BenchShop], workers: int, args: argparse.Namespace) -> dict[str, Any]:
    posts = [p for s in shops for p in catalog_wide(s, args.catalog, workers)]
    ingest_seconds = ingest(posts)
    gets_before = sum(s.retailer.get_requests for s in shops)
    seconds, cpu = drain(stack, shops, workers)
    gets = sum(s.retailer.get_requests for s in shops) - gets_before
    wrong = sum(1 for s in shops for pid in s.product_ids[: args.catalog]
                if s.abaha.products.get(str(pid), {}).get("name") != s.retailer.products[pid]["name"])  # fmt: skip
    events = args.catalog * len(shops)
    return {"events": events, "ingest_seconds": round(ingest_seconds, 2), "drain_seconds": round(seconds, 3),
            "cpu_seconds_during_drain": cpu, "kiotviet_gets_per_shop": round(gets / len(shops), 1),
            "events_per_second": round(events / seconds, 1),
            "events_per_second_per_worker": round(events / seconds / workers, 1),
            "products_with_wrong_final_name": wrong}  # fmt: skip


def run_orders(stack: LocalStack, shops: list[BenchShop], workers: int, args: argparse.Namespace) -> dict[str, Any]:
    calls_before = sum(len(s.retailer.calls) for s in shops)
    posts = [p for s in shops for p in abaha_orders(s, args.orders)]
    ingest_seconds = ingest(posts)
    gets_before = sum(s.retailer.get_requests for s in shops)
    seconds, cpu = drain(stack, shops, workers)
    gets = sum(s.retailer.get_requests for s in shops) - gets_before
    calls = sum(len(s.retailer.calls) for s in shops) - calls_before
    unlinked = sum(1 for s in shops for o in s.abaha.orders.values() if not o.get("kiotviet"))
    made = sum(len(s.retailer.orders) for s in shops)
    events = args.orders * len(shops)
    return {"events": events, "ingest_seconds": round(ingest_seconds, 2), "drain_seconds": round(seconds, 3),
            "cpu_seconds_during_drain": cpu, "kiotviet_gets_per_shop": round(gets / len(shops), 1),
            "events_per_second": round(events / seconds, 1),
            "events_per_second_per_worker": round(events / seconds / workers, 1),
            "kiotviet_calls_per_order": round(calls / events, 2), "abaha_orders_unlinked": unlinked,
            "kiotviet_orders_total": made}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--shops", type=int, default=8)
    parser.add_argument("--changes", type=int, default=6000, help="stock changes per shop")
    parser.add_argument("--products", type=int, default=60, help="products the stock changes fall on")
    parser.add_argument("--catalog", type=int, default=1000, help="distinct products updated per shop")
    parser.add_argument("--orders", type=int, default=40, help="Abaha orders per shop")
    parser.add_argument("--empty-jobs", type=int, default=400, help="empty jobs per worker for the baseline")
    args = parser.parse_args()
    runs = []
    with running_stack(workers=1) as stack:
        shops = [connect(stack, f"bench-tp-{n}", products=max(args.catalog, args.products)) for n in range(args.shops)]
        stack.stop_worker(stack.workers[0])
        for workers in args.workers:
            baseline = empty_job_rate(stack, workers, args.empty_jobs * workers)
            flash = run_flash(stack, shops, workers, args)
            catalog = run_catalog(stack, shops, workers, args)
            orders = run_orders(stack, shops, workers, args)
            per_worker = baseline["per_second_per_worker"]
            mixes = {"flash_sale": flash, "catalog_wide": catalog, "orders": orders}
            runs.append({"workers": workers, "empty_jobs": baseline, **mixes,
                         **{f"{name}_vs_empty_job": round(mix["events_per_second_per_worker"] / per_worker, 2)
                            for name, mix in mixes.items()}})  # fmt: skip
            print(json.dumps(runs[-1]), flush=True)
    sizes = {"shops": args.shops, "changes_per_shop": args.changes, "products": args.products,
             "catalog_per_shop": args.catalog, "orders_per_shop": args.orders}  # fmt: skip
    write_result("throughput", {**sizes, "runs": runs})


if __name__ == "__main__":
    main()
