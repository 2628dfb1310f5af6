"""Benchmark: what one change costs Redis, and how many changes a second one Redis can carry.

1. The service as the tests run it (gunicorn, WORKERS workers, the sandbox) on a private Redis.
   For each kind of change (a KiotViet `product.update`, dated content; a `stock.update`, a signal
   read back from KiotViet) and each pace (`lone`: one change at a time, each applied before the
   next, so every change pays a whole drain; `burst`: N changes to N products sent by 8 clients,
   applied in batches), Redis's own counters are read before and after: commands by name
   (`INFO commandstats`; commands run inside a Lua script are counted too, under their own names)
   and the server's CPU time (`INFO cpu`). An idle window of the same stack gives the background
   rate (workers' polls, heartbeats, the scheduler), subtracted from the CPU per change.
2. `redis-benchmark` (Debian's) against a fresh Redis: the plain commands a change uses most, and
   the service's own ingest script (`adapters/lua/ingest.lua`, EVALSHA with one event), by 50
   clients.
3. The ceiling: changes a second one Redis core carries = 1 / (CPU seconds per change).

    .venv/bin/python -m bench.redis_cost [--changes 400] [--lone 60]

Writes bench/results/redis_cost.json; docs/scaling.md quotes it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import redis
import requests

from adapters.embedded_redis import start_redis_server, wait_for_redis
from sandbox.kiotviet_data import Retailer, demo_retailer, grow_catalogue
from sandbox.stack import LocalStack, free_port

SHOP = "bench-redis"
WORKERS = 2
FIRST = 300_000
LUA = Path(__file__).resolve().parent.parent / "adapters" / "lua"
RATE = re.compile(r"^([A-Z]+)[^:\n]*: ([\d.]+) requests per second", re.M)
BENCH_COMMANDS = "set,get,incr,hset,zadd,lpush,rpop,zpopmin"


def counters(connection: redis.Redis) -> tuple[dict[str, int], float]:
    """Calls by command since the last reset, and the server's CPU seconds so far."""
    stats = connection.info("commandstats")
    calls = {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}
    cpu = connection.info("cpu")
    return calls, float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def measure(connection: redis.Redis, run: Callable[[], int], idle_cpu_per_second: float) -> dict[str, Any]:
    """Run `run` (which answers how many changes it made) between two readings of the counters."""
    connection.config_resetstat()
    _, cpu_before = counters(connection)
    started = time.perf_counter()
    changes = run()
    wall = time.perf_counter() - started
    calls, cpu_after = counters(connection)
    for own in ("info", "config", "config|resetstat"):  # the benchmark's readings, not the service's
        calls.pop(own, None)
    cpu = cpu_after - cpu_before
    work_cpu = max(cpu - idle_cpu_per_second * wall, 0.0)
    per_change = {name: round(n / changes, 2) for name, n in sorted(calls.items(), key=lambda kv: -kv[1])}
    return {
        "changes": changes, "wall_seconds": round(wall, 2),
        "commands_per_change": round(sum(calls.values()) / changes, 1),
        "by_command_per_change": per_change,
        "redis_cpu_ms_per_change": round(work_cpu / changes * 1000, 3),
        "ceiling_changes_per_second_per_redis_core": round(changes / work_cpu) if work_cpu else None,
    }  # fmt: skip


class Changes:
    """Changes made in the simulated KiotViet (which sends the signed webhooks), and waits on
    the simulated Abaha (read in this process, so waiting costs Redis nothing)."""

    def __init__(self, stack: LocalStack, retailer: Retailer) -> None:
        assert stack.sandbox is not None
        self.base = f"{stack.sandbox.url}/_sandbox/kiotviet/{retailer.name}"
        self.abaha = stack.sandbox.abaha.add_shop(SHOP, "bench-token")
        self.session = requests.Session()

    def product(self, product_id: int, price: int) -> None:
        answer = self.session.post(f"{self.base}/products/{product_id}", json={"basePrice": price}, timeout=30)
        assert [d["status"] for d in answer.json()["delivered"]] == [200], answer.text

    def stock(self, product_id: int, on_hand: int) -> None:
        body = {"branchId": 11, "onHand": on_hand, "reserved": 0}
        answer = self.session.post(f"{self.base}/products/{product_id}/stock", json=body, timeout=30)
        assert [d["status"] for d in answer.json()["delivered"]] == [200], answer.text

    def wait(self, done: Callable[[dict[str, Any] | None], bool], ids: range, deadline: float = 300) -> None:
        end = time.monotonic() + deadline
        while not all(done(self.abaha.products.get(str(i))) for i in ids):
            if time.monotonic() > end:
                raise RuntimeError("the changes were not applied in time")
            time.sleep(0.02)  # the benchmark's own polling


def scenarios(stack: LocalStack, changes: int, lone: int) -> dict[str, Any]:
    assert stack.sandbox is not None
    retailer = stack.sandbox.kiotviet.add_retailer(demo_retailer("benchredis"))
    grow_catalogue(retailer, products=changes, first_id=FIRST)
    make = Changes(stack, retailer)
    body = {"retailer": retailer.name, "client_id": retailer.client_id, "client_secret": retailer.client_secret,
            "branch_id": 11, "abaha_api_token": "bench-token"}  # fmt: skip
    stack.admin("PUT", f"/admin/connections/{SHOP}", json=body).raise_for_status()
    connection = redis.Redis.from_url(stack.env["REDIS_URL"])

    connection.config_resetstat()
    _, idle_before = counters(connection)
    time.sleep(10)  # the idle window itself
    idle_calls, idle_after = counters(connection)
    idle_cpu = (idle_after - idle_before) / 10

    def priced(price: int) -> Callable[[dict[str, Any] | None], bool]:
        return lambda held: held is not None and held.get("price") == price

    def lone_products() -> int:
        for i in range(FIRST, FIRST + lone):
            make.product(i, 111_000)
            make.wait(priced(111_000), range(i, i + 1))
        return lone

    def burst(send: Callable[[int], None], done: Callable[[dict[str, Any] | None], bool]) -> int:
        ids = range(FIRST, FIRST + changes)
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(send, ids))
        make.wait(done, ids)
        return changes

    def stocked(on_hand: int) -> Callable[[dict[str, Any] | None], bool]:
        return lambda held: held is not None and held.get("stock") == on_hand

    def lone_stock() -> int:
        for i in range(FIRST, FIRST + lone):
            make.stock(i, 41)
            make.wait(stocked(41), range(i, i + 1))
        return lone

    return {
        "idle": {"commands_per_second": round(sum(idle_calls.values()) / 10, 1),
                 "redis_cpu_ms_per_second": round(idle_cpu * 1000, 2), "workers": WORKERS},
        "product_lone": measure(connection, lone_products, idle_cpu),
        "product_burst": measure(connection, lambda: burst(lambda i: make.product(i, 222_000), priced(222_000)),
                                 idle_cpu),
        "stock_lone": measure(connection, lone_stock, idle_cpu),
        "stock_burst": measure(connection, lambda: burst(lambda i: make.stock(i, 42), stocked(42)), idle_cpu),
    }  # fmt: skip


def redis_benchmark(requests_per_test: int) -> dict[str, Any]:
    """Debian's redis-benchmark against a fresh private Redis (AOF on, as production runs)."""
    binary = shutil.which("redis-benchmark")
    if binary is None:
        return {"skipped": "redis-benchmark not installed"}
    with tempfile.TemporaryDirectory() as state:
        port = free_port()
        server = start_redis_server(Path(state), port=port, persist=True)
        try:
            wait_for_redis(f"redis://127.0.0.1:{port}/0")
            client = redis.Redis(port=port)
            sha = client.script_load((LUA / "common.lua").read_text() + (LUA / "ingest.lua").read_text())
            event = json.dumps({"id": "x", "type": "stock.update", "data": {"ProductId": 1}})
            base = [binary, "-p", str(port), "-c", "50", "-n", str(requests_per_test), "-r", "1000000", "-q"]
            plain = subprocess.run([*base, "-t", BENCH_COMMANDS], capture_output=True, text=True, check=True).stdout
            memory_before = int(client.info("memory")["used_memory"])
            ingest = subprocess.run([*base, "EVALSHA", sha, "2", "sync:{bench}:", "sync:ready", "bench", "2592000",
                                     "300", "\x1f".join(("ev:__rand_int__", "product:__rand_int__", "s", "0", "")),
                                     event], capture_output=True, text=True, check=True).stdout  # fmt: skip
            version = client.info("server")["redis_version"]
            claims = sum(1 for _ in client.scan_iter(match="sync:{bench}:claim:*", count=10_000))
            claim = next(client.scan_iter(match="sync:{bench}:claim:*", count=10_000))
            memory = {"events_accepted": claims, "bytes_per_claim_key": client.memory_usage(claim),
                      "bytes_per_accepted_event": round((int(client.info("memory")["used_memory"]) - memory_before)
                                                        / max(claims, 1))}  # fmt: skip
        finally:
            server.terminate()
            server.wait(timeout=10)
    rates = {name.lower(): float(rate) for name, rate in RATE.findall(plain.replace("\r", "\n"))}
    rates["ingest_script_one_event"] = float(re.findall(r"([\d.]+) requests per second", ingest)[-1])
    return {"server": version, "clients": 50, "requests_per_second": rates, "memory": memory}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--changes", type=int, default=400, help="changes per burst (one product each)")
    parser.add_argument("--lone", type=int, default=60, help="changes made one at a time")
    parser.add_argument("--benchmark-requests", type=int, default=200_000)
    parser.add_argument("--out", type=Path, default=Path("bench/results/redis_cost.json"))
    args = parser.parse_args()
    environ = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "KIOTVIET_API_URL", "ABAHA_API_URL")}
    # the sandbox does not throttle; the shop's KiotViet budget would pace the burst's reads (what is
    # measured is Redis's cost, not the budget's waits: docs/scaling.md counts the budget apart)
    environ.update(LOG_FORMAT="json", RECONCILE_INTERVAL="0", KIOTVIET_HOURLY_BUDGET="1000000")
    with tempfile.TemporaryDirectory() as state:
        stack = LocalStack(Path(state), environ=environ, private_redis=True, log_dir=Path(state) / "logs")
        stack.start(workers=WORKERS)
        try:
            result = {"service": scenarios(stack, args.changes, args.lone)}
        finally:
            stack.stop()
    result["redis_benchmark"] = redis_benchmark(args.benchmark_requests)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
