"""Benchmark: a worker's peak memory draining a storm of 100,000 events against one of 10,000.

For each size E: a shop of E/50 products (synced first), a storm of E stock changes over them
(deliveries of 100 items, each value set in the simulated KiotViet first) ingested with no
worker running; then one fresh worker drains it while the resident memory of the worker and
of the work horses it forks is sampled every 20 ms. The final stock of every product on
Abaha is checked against KiotViet's.

    .venv/bin/python -m bench.memory [--sizes 10000 100000] [--per-product 50]

(At 5 changes a product, 20,000 products for the larger storm, each batch of 500 pages through
every recently changed product's stock and runs past RQ's 100 s job timeout: see
docs/benchmarks.md.)
"""

from __future__ import annotations

import argparse
import random
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.full_sync import PeakMemory
from bench.harness import BenchShop, connect, first_job_taken, redis_of, running_stack, wait_idle, write_result
from sandbox.stack import LocalStack

ITEMS_PER_DELIVERY = 100


def send_storm(shop: BenchShop, events: int, seed: int) -> float:
    rng = random.Random(seed)  # noqa: S311 - a load, not a secret
    batches = [[shop.set_stock(rng.choice(shop.product_ids), rng.randint(0, 500)) for _ in range(ITEMS_PER_DELIVERY)]
               for _ in range(events // ITEMS_PER_DELIVERY)]  # fmt: skip
    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda n: shop.post("stock.update", batches[n], f"mem-{seed}-{n}"),
                                 range(len(batches))))  # fmt: skip
    assert all(s == 200 for s in statuses), statuses[:5]
    return time.perf_counter() - started


def measure(stack: LocalStack, events: int, per_product: int) -> dict[str, Any]:
    shop = connect(stack, f"bench-mem-{events}", products=max(1, events // per_product))
    ingest_seconds = send_storm(shop, events, events)
    worker = stack.start_worker()
    with PeakMemory(worker.pid) as memory:
        started = first_job_taken(redis_of(stack), 1)
        drained = wait_idle(stack, [shop.shop_id]) - started
    stack.stop_worker(worker)
    wrong = sum(1 for pid in shop.product_ids if shop.abaha_stock().get(pid) != shop.sellable(pid))
    return {"events": events, "products": len(shop.product_ids), "ingest_seconds": round(ingest_seconds, 1),
            "drain_seconds": round(drained, 1), "worker_peak_rss_mib": round(memory.worker_peak / 2**20, 1),
            "horse_peak_rss_mib": round(memory.horse_peak / 2**20, 1),
            "products_with_wrong_final_stock": wrong}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--per-product", type=int, default=50, help="changes per product in the storm")
    args = parser.parse_args()
    with running_stack(workers=0) as stack:
        results = [measure(stack, size, args.per_product) for size in sorted(args.sizes)]
    small, large = results[0], results[-1]

    def peak(r: dict[str, Any]) -> float:
        return float(max(r["worker_peak_rss_mib"], r["horse_peak_rss_mib"]))

    write_result("memory", {"results": results, "peak_ratio_largest_vs_smallest": round(peak(large) / peak(small), 3)})


if __name__ == "__main__":
    main()
