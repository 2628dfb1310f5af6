"""Benchmark: how long a change takes from its delivery to the write arriving at Abaha.

One shop of P products, W workers running. R deliveries a second for D seconds, each one
`stock.update` item for the next product in turn (its stock in the simulated KiotViet set first,
to a value that only grows, so the write that carries it, or a newer one, is the one that
answers the delivery). The arrival of every write at the simulated Abaha is clocked in this
process (the sandbox runs here), so delivery and arrival share one clock. Then, with the service
idle, lone deliveries one at a time: a lone change must not wait for a batch to fill.

    .venv/bin/python -m bench.latency [--rate 100] [--seconds 60] [--workers 2] [--products 600]
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from bench.harness import (
    BenchShop,
    CpuUse,
    WriteClock,
    connect,
    drain_batches,
    running_stack,
    summary_ms,
    wait_idle,
    write_result,
)


@dataclass
class Sent:
    product_id: int
    stock: int
    set_at: float
    sent_at: float = 0.0
    answered_at: float = 0.0
    status: int = 0


def send_one(shop: BenchShop, product_id: int, stock: int, delivery_id: str) -> Sent:
    """Set the product's stock in KiotViet, deliver the change, note the times."""
    sent = Sent(product_id, stock, time.perf_counter())
    item = shop.set_stock(product_id, stock)
    raw, signature = shop.signed("stock.update", [item], delivery_id)
    sent.sent_at = time.perf_counter()
    answer = shop.session().post(shop.url, data=raw, timeout=30, headers={"X-Hub-Signature": signature})
    sent.status = answer.status_code
    sent.answered_at = time.perf_counter()
    return sent


def paced(shop: BenchShop, rate: float, seconds: float, products: list[int]) -> list[Sent]:
    """`rate` deliveries a second for `seconds`, on schedule (8 senders); what was sent."""
    count = int(rate * seconds)
    futures: list[Future[Sent]] = []
    stocks = dict.fromkeys(products, 1000)
    with ThreadPoolExecutor(8) as pool:
        start = time.perf_counter()
        for n in range(count):
            due = start + n / rate
            if (wait := due - time.perf_counter()) > 0:
                time.sleep(wait)  # the load's own pace
            product = products[n % len(products)]
            stocks[product] += 1
            futures.append(pool.submit(send_one, shop, product, stocks[product], f"lat-{n}"))
    return [f.result() for f in futures]


def latencies(clock: WriteClock, shop: BenchShop, sent: list[Sent]) -> tuple[list[float], int]:
    """Seconds from each delivery to the first write carrying its value or a newer one."""
    found, missing = [], 0
    for s in sent:
        arrived = clock.first_at_least(shop.shop_id, s.product_id, s.stock, s.set_at)
        if arrived is None:
            missing += 1
        else:
            found.append(max(0.0, arrived - s.sent_at))
    return found, missing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--products", type=int, default=600)
    parser.add_argument("--lone", type=int, default=20, help="lone deliveries after the load")
    args = parser.parse_args()
    with running_stack(workers=args.workers) as stack, WriteClock() as clock:
        shop = connect(stack, "bench-latency", products=args.products)
        load_started = time.time()
        cpu = CpuUse(stack).start()
        sent = paced(shop, args.rate, args.seconds, shop.product_ids)
        wait_idle(stack, [shop.shop_id])
        cpu_used = cpu.stop()
        batches = drain_batches(stack, shop.shop_id, load_started)
        loaded, missing = latencies(clock, shop, sent)
        lone: list[Sent] = []
        for n in range(args.lone):
            time.sleep(1.0)  # idle between lone changes: each finds the service with nothing to do
            lone.append(send_one(shop, shop.product_ids[n], 100_000 + n, f"lone-{n}"))
            wait_idle(stack, [shop.shop_id])
        lone_latency, lone_missing = latencies(clock, shop, lone)
    wrong = sum(1 for pid in shop.product_ids if shop.abaha_stock().get(pid) != shop.sellable(pid))
    achieved = len(sent) / (sent[-1].sent_at - sent[0].sent_at) if len(sent) > 1 else 0.0
    write_result("latency", {
        "workers": args.workers, "products": args.products, "target_rate": args.rate, "seconds": args.seconds,
        "achieved_rate": round(achieved, 1), "non_200_answers": sum(1 for s in sent if s.status != 200),
        "ack": summary_ms([s.answered_at - s.sent_at for s in sent]),
        "delivery_to_abaha_write": summary_ms(loaded), "deliveries_without_write": missing,
        "lone_delivery_to_abaha_write": summary_ms(lone_latency), "lone_without_write": lone_missing,
        "products_with_wrong_final_stock": wrong, "batches_under_load": batches, "cpu_seconds_under_load": cpu_used,
    })  # fmt: skip


if __name__ == "__main__":
    main()
