"""Benchmark: one shop's storm does not hold up another shop's change.

Shop A gets a storm of E stock changes over P products (deliveries of 100 items, sent as fast
as the service takes them, W workers running). Every half second from the storm's start until
A has nothing left pending, shop B gets one stock change; its time from delivery to the write
arriving at the simulated Abaha is measured (the sandbox runs in this process, one clock). The
baseline is the same lone change of B with A idle, in the same run.

    .venv/bin/python -m bench.fairness [--events 50000] [--products 5000] [--workers 1]
"""

from __future__ import annotations

import argparse
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from bench.harness import (
    BenchShop,
    CpuUse,
    WriteClock,
    connect,
    drain_batches,
    pending_total,
    redis_of,
    running_stack,
    summary_ms,
    wait_idle,
    write_result,
)
from bench.latency import Sent, latencies, send_one
from sandbox.stack import LocalStack

ITEMS_PER_DELIVERY = 100
PROBE_EVERY = 0.5


def storm(shop: BenchShop, events: int, products: int, seed: int) -> float:
    """Send the storm, 4 deliveries at a time; seconds taken."""
    rng = random.Random(seed)  # noqa: S311 - a load, not a secret

    def one(n: int) -> int:
        items = [shop.set_stock(rng.choice(shop.product_ids[:products]), rng.randint(0, 500))
                 for _ in range(ITEMS_PER_DELIVERY)]  # fmt: skip
        return shop.post("stock.update", items, f"storm-{seed}-{n}")

    started = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(one, range(events // ITEMS_PER_DELIVERY)))
    assert all(s == 200 for s in statuses), statuses[:5]
    return time.perf_counter() - started


def probe(stack: LocalStack, a: BenchShop, b: BenchShop, done: threading.Event) -> list[Sent]:
    """B's lone changes every PROBE_EVERY seconds until A's storm is sent and drained."""
    connection = redis_of(stack)
    sent: list[Sent] = []
    n = 0
    while not done.is_set() or pending_total(connection, [a.shop_id]):
        sent.append(send_one(b, b.product_ids[n % len(b.product_ids)], 10_000 + n, f"probe-{n}"))
        n += 1
        time.sleep(PROBE_EVERY)  # the probe's own pace
    return sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--products", type=int, default=5_000)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    with running_stack(workers=args.workers) as stack, WriteClock() as clock:
        a = connect(stack, "bench-storm", products=args.products)
        b = connect(stack, "bench-quiet", products=20)
        alone = []
        for n in range(10):
            alone.append(send_one(b, b.product_ids[n], 5_000 + n, f"alone-{n}"))
            wait_idle(stack, [b.shop_id])
        done = threading.Event()
        storm_started = time.time()
        cpu = CpuUse(stack).start()
        with ThreadPoolExecutor(1) as pool:
            probes = pool.submit(probe, stack, a, b, done)
            started = time.perf_counter()
            send_seconds = storm(a, args.events, args.products, seed=1)
            done.set()
            sent = probes.result()
        drained = wait_idle(stack, [a.shop_id, b.shop_id]) - started
        cpu_used = cpu.stop()
        batches = {"storm_shop": drain_batches(stack, a.shop_id, storm_started),
                   "other_shop": drain_batches(stack, b.shop_id, storm_started)}  # fmt: skip
        during, missing = latencies(clock, b, sent)
        baseline, _ = latencies(clock, b, alone)
    wrong = sum(1 for pid in a.product_ids[: args.products] if a.abaha_stock().get(pid) != a.sellable(pid))
    p95_during = summary_ms(during).get("p95_ms", 0.0)
    p95_alone = summary_ms(baseline).get("p95_ms", 1.0)
    write_result("fairness", {
        "workers": args.workers, "storm_events": args.events, "storm_products": args.products,
        "storm_send_seconds": round(send_seconds, 1), "storm_sent_and_drained_seconds": round(drained, 1),
        "storm_products_with_wrong_final_stock": wrong,
        "other_shop_during_storm": summary_ms(during), "other_shop_probes_without_write": missing,
        "other_shop_alone": summary_ms(baseline), "p95_during_vs_alone": round(p95_during / p95_alone, 1),
        "batches": batches, "cpu_seconds_during_storm": cpu_used,
    })  # fmt: skip


if __name__ == "__main__":
    main()
