"""Benchmark: what a rejected delivery and a very large one cost, against the bare endpoint.

1. Bad signatures: 1 MiB deliveries signed with a wrong secret, against a shop saved once and
   the same shop saved again S times (each save gives every webhook type a fresh secret). Three
   bodies: a `stock.update` delivery (one type named), the same size naming every webhook type,
   and an unreadable body naming none; plus a small bad-signed delivery. Each is answered `200`
   and quarantined. Reported: the answer time and the web server's CPU per request (gunicorn's
   processes, read from /proc), as ratios to `GET /healthz` measured in the same run.
2. A 16,000-item `stock.update` delivery (under 1 MiB) from a correctly signed KiotViet: its
   answer time against the bare endpoint, every item pending afterwards, and the longest any
   other Redis client waited for a `PING` while it was ingested.

    .venv/bin/python -m bench.deliveries [--saves 30] [--repeat 15] [--items 16000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import psutil
import requests

from adapters import keys
from bench.harness import BenchShop, connect, redis_of, running_stack, summary_ms, write_result
from bench.wrk_ingest import profile_posts
from sandbox.kiotviet_data import sign
from sandbox.stack import LocalStack
from schemas.kiotviet_webhook import WEBHOOK_TYPES

MIB = 2**20


def web_cpu_seconds(stack: LocalStack) -> float:
    """CPU seconds used so far by gunicorn's arbiter and its workers."""
    root = psutil.Process(stack._web.pid)  # type: ignore[union-attr]  # the stack's web process
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        times = process.cpu_times()
        total += times.user + times.system
    return total


def timed(stack: LocalStack, send: Callable[[requests.Session, int], int], repeat: int) -> dict[str, Any]:
    """(CPU time is read in clock ticks of 10 ms: the bare endpoint is timed over many more
    requests than the others.)"""
    """`repeat` sequential requests: answer time and web CPU per request (after 3 unmeasured)."""
    with requests.Session() as session:
        for n in range(3):
            assert send(session, -1 - n) == 200
        seconds = []
        cpu_before = web_cpu_seconds(stack)
        for n in range(repeat):
            started = time.perf_counter()
            status = send(session, n)
            seconds.append(time.perf_counter() - started)
            assert status == 200, status
        cpu = (web_cpu_seconds(stack) - cpu_before) / repeat
    return {**summary_ms(seconds), "web_cpu_ms_per_request": round(cpu * 1000, 2)}


def padded_stock_body(shop: BenchShop, delivery: str, size: int, actions: list[str]) -> bytes:
    """A `stock.update`-shaped body of about `size` bytes whose notifications name `actions`."""
    item = {"ProductId": 100_000, "BranchId": 11, "OnHand": 1, "Reserved": 0}
    one = len(json.dumps(item)) + 2
    per = max(1, (size - 200 * len(actions)) // one // len(actions))
    notes = [{"Action": f"{a}.{shop.retailer.retailer_id}", "Data": [item] * per} for a in actions]
    return json.dumps({"Id": delivery, "Attempt": 1, "Notifications": notes}).encode()


def bad_signature_cases(shop: BenchShop, size: int) -> dict[str, Callable[[requests.Session, int], int]]:
    bodies = {
        "bad_signature_1mib_one_type": lambda n: padded_stock_body(shop, f"bad-a-{n}", size, ["stock.update"]),
        "bad_signature_1mib_every_type": lambda n: padded_stock_body(shop, f"bad-b-{n}", size, list(WEBHOOK_TYPES)),
        "bad_signature_1mib_unreadable": lambda n: b"x" * (size - 8) + str(n).encode().rjust(8, b"0"),
        "bad_signature_small": lambda n: shop.body("stock.update", [{"ProductId": 100_000, "BranchId": 11,
                                                                     "OnHand": 1, "Reserved": 0}], f"bad-s-{n}"),
    }  # fmt: skip

    def sender(make: Callable[[int], bytes]) -> Callable[[requests.Session, int], int]:
        def send(session: requests.Session, n: int) -> int:
            raw = make(n)
            headers = {"X-Hub-Signature": sign(raw, "not-the-secret", "kiotviet-live")}
            return session.post(shop.url, data=raw, headers=headers, timeout=30).status_code

        return send

    return {name: sender(make) for name, make in bodies.items()}


def resave(stack: LocalStack, shop: BenchShop, times: int) -> float:
    """Save the connection again `times` times; seconds taken."""
    body = {"retailer": shop.retailer.name, "client_id": shop.retailer.client_id,
            "client_secret": shop.retailer.client_secret, "branch_id": 11, "surcharge_code": "THK000001",
            "abaha_api_token": shop.abaha_token}  # fmt: skip
    started = time.perf_counter()
    for _ in range(times):
        stack.admin("PUT", f"/admin/connections/{shop.shop_id}", json=body).raise_for_status()
    shop.secrets = {h["type"]: h["secret"] for h in shop.retailer.webhooks.values()}
    return time.perf_counter() - started


def big_delivery(stack: LocalStack, shop: BenchShop, items: int, repeat: int) -> dict[str, Any]:
    """Answer time of `items`-item deliveries (distinct products), Redis's longest stall meanwhile."""
    connection = redis_of(stack)
    pending_key = keys.shop_key(shop.shop_id, keys.PENDING_META)
    stalls: list[float] = []
    answers: list[float] = []
    watched: list[float] = []
    sizes, pending_after = [], []
    for n in range(repeat * 2):
        raw, signature = big_body(shop, items, 1_000_000 + n * items, f"big-{n}")
        sizes.append(len(raw))
        before = int(connection.hlen(pending_key))  # type: ignore[arg-type]
        # every other delivery with another Redis client pinging meanwhile (it takes CPU, so
        # the answer time is quoted from the others)
        stop = threading.Event()
        pinger = threading.Thread(target=ping_loop, args=(stack, stop, stalls))
        if n % 2:
            pinger.start()
        started = time.perf_counter()
        status = requests.post(shop.url, data=raw, headers={"X-Hub-Signature": signature}, timeout=30)
        (watched if n % 2 else answers).append(time.perf_counter() - started)
        stop.set()
        if n % 2:
            pinger.join()
        assert status.status_code == 200, status.status_code
        pending_after.append(int(connection.hlen(pending_key)) - before)  # type: ignore[arg-type]
    return {"items": items, "bytes": max(sizes), "answer": summary_ms(answers),
            "answer_while_pinged": summary_ms(watched),
            "items_pending_after_each": sorted(set(pending_after)),
            "longest_ping_wait_ms": round(max(stalls) * 1000, 2) if stalls else None,
            "pings": len(stalls)}  # fmt: skip


def big_body(shop: BenchShop, items: int, first_product: int, delivery: str) -> tuple[bytes, str]:
    """A signed `stock.update` delivery of `items` products, compact JSON (so 16,000 fit in 1 MiB)."""
    data = [{"ProductId": first_product + i, "BranchId": 11, "OnHand": i % 50, "Reserved": 0} for i in range(items)]
    action = f"stock.update.{shop.retailer.retailer_id}"
    envelope = {"Id": delivery, "Attempt": 1, "Notifications": [{"Action": action, "Data": data}]}
    raw = json.dumps(envelope, separators=(",", ":")).encode()
    return raw, sign(raw, shop.secrets["stock.update"], "kiotviet-live")


def profile_big(stack: LocalStack, shop: BenchShop, items: int) -> dict[str, Any]:
    """One `items`-item delivery through the app under cProfile (after a small one, unmeasured)."""
    warm = big_body(shop, 10, 5_000_000, "profile-big-warm")
    big = big_body(shop, items, 6_000_000, "profile-big")
    found = profile_posts(stack, shop, [warm], [big])
    found.pop("cumulative_ms_per_request_top", None)
    return found


def ping_loop(stack: LocalStack, stop: threading.Event, stalls: list[float]) -> None:
    """Another Redis client: PING back to back, each wait kept."""
    connection = redis_of(stack)
    while not stop.wait(0.002):
        started = time.perf_counter()
        connection.ping()
        stalls.append(time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--saves", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--items", type=int, default=16_000)
    parser.add_argument("--size", type=int, default=MIB - 4096, help="bytes of the large rejected bodies")
    args = parser.parse_args()
    with running_stack(workers=0) as stack:
        shop = connect(stack, "bench-deliveries", sync=False)

        def bare(session: requests.Session, _: int) -> int:
            return session.get(f"{stack.url}/healthz", timeout=10).status_code

        cases = bad_signature_cases(shop, args.size)
        saved_once = {"bare_endpoint": timed(stack, bare, args.repeat * 20),
                      **{name: timed(stack, send, args.repeat) for name, send in cases.items()}}  # fmt: skip
        resave_seconds = resave(stack, shop, args.saves)
        saved_often = {"bare_endpoint": timed(stack, bare, args.repeat * 20),
                       **{name: timed(stack, send, args.repeat) for name, send in cases.items()}}  # fmt: skip
        big_bare = timed(stack, bare, args.repeat * 20)
        big = big_delivery(stack, shop, args.items, max(3, args.repeat // 3))
        profiled = profile_big(stack, shop, args.items)
    ratios = {
        label: {name: {"answer_p50_vs_bare": round(row["p50_ms"] / figures["bare_endpoint"]["p50_ms"], 1),
                       "web_cpu_vs_bare": round(row["web_cpu_ms_per_request"]
                                                / max(figures["bare_endpoint"]["web_cpu_ms_per_request"], 0.01), 1)}
                for name, row in figures.items() if name != "bare_endpoint"}
        for label, figures in (("saved_once", saved_once), (f"saved_{args.saves + 1}_times", saved_often))
    }  # fmt: skip
    often = saved_often["bad_signature_1mib_one_type"]["web_cpu_ms_per_request"]
    once = saved_once["bad_signature_1mib_one_type"]["web_cpu_ms_per_request"]
    write_result("deliveries", {
        "saves": args.saves + 1, "resave_seconds": round(resave_seconds, 1), "body_bytes": args.size,
        "bad_signature": {"saved_once": saved_once, f"saved_{args.saves + 1}_times": saved_often},
        "ratios_vs_bare": ratios,
        "one_type_cpu_saved_often_vs_once": round(often / max(once, 0.01), 2),
        "big_delivery": {**big, "bare_endpoint": big_bare, "profile": profiled,
                         "answer_p50_vs_bare": round(big["answer"]["p50_ms"] / big_bare["p50_ms"], 1)},
    })  # fmt: skip
    print("median bare p50 ms:", statistics.median([saved_once["bare_endpoint"]["p50_ms"], big_bare["p50_ms"]]))


if __name__ == "__main__":
    main()
