"""Benchmark: KiotViet webhook ingest and event application, against same-run baselines.

1. Acknowledgement: N signed `stock.update` deliveries (each a new delivery id) sent by C
   concurrent clients to gunicorn; p50 / p99 latency and throughput, against `GET /healthz` on
   the same server under the same load (the bare endpoint).
2. Application: one worker drains the N events (each a PATCH of stock on the simulated Abaha);
   events per second, against the same worker draining N empty RQ jobs.

    .venv/bin/python -m bench.ingest [--requests 2000] [--clients 8]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import redis
import requests
from rq import Queue
from rq.serializers import JSONSerializer

from sandbox.kiotviet_data import demo_retailer, sign
from sandbox.stack import LocalStack

SHOP = "bench-ingest"


def load(send: Callable[[requests.Session, int], int], count: int, clients: int) -> dict[str, float]:
    """Run `send` `count` times over `clients` threads; latency percentiles and throughput."""
    sessions = [requests.Session() for _ in range(clients)]
    latencies: list[float] = []

    def one(n: int) -> None:
        started = time.perf_counter()
        status = send(sessions[n % clients], n)
        latencies.append(time.perf_counter() - started)
        assert status == 200, status

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, range(count)))
    wall = time.perf_counter() - started
    cuts = statistics.quantiles(latencies, n=100)
    return {
        "per_second": round(count / wall, 1),
        "p50_ms": round(cuts[49] * 1000, 2),
        "p99_ms": round(cuts[98] * 1000, 2),
    }


def drain_seconds(connection: redis.Redis, queue: str, stack: LocalStack) -> float:
    """Seconds one worker takes to empty `queue` (the worker is started for it, then stopped)."""
    started = time.perf_counter()
    worker = stack.start_worker()
    registry = Queue(queue, connection=connection, serializer=JSONSerializer)
    while registry.count or registry.started_job_registry.count:
        time.sleep(0.05)  # the benchmark's own polling
    elapsed = time.perf_counter() - started
    stack.stop_worker(worker)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("bench/results/ingest.json"))
    args = parser.parse_args()
    environ = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "KIOTVIET_API_URL", "ABAHA_API_URL")}
    environ.update(LOG_FORMAT="json", RECONCILE_INTERVAL="0")
    with tempfile.TemporaryDirectory() as state:
        stack = LocalStack(Path(state), environ=environ, private_redis=True, log_dir=Path(state) / "logs")
        stack.start(workers=0)
        try:
            result = measure(stack, args.requests, args.clients)
        finally:
            stack.stop()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


def measure(stack: LocalStack, count: int, clients: int) -> dict[str, Any]:
    assert stack.sandbox is not None
    retailer = stack.sandbox.kiotviet.add_retailer(demo_retailer("benchingest"))
    stack.sandbox.abaha.add_shop(SHOP, "bench-token")
    body = {"retailer": retailer.name, "client_id": retailer.client_id, "client_secret": retailer.client_secret,
            "branch_id": 11, "abaha_api_token": "bench-token"}  # fmt: skip
    stack.admin("PUT", f"/admin/connections/{SHOP}", json=body).raise_for_status()
    secret = next(h["secret"] for h in retailer.webhooks.values() if h["type"] == "stock.update")
    url = f"{stack.url}/webhooks/kiotviet/{SHOP}"

    def deliver(session: requests.Session, n: int) -> int:
        raw = json.dumps({"Id": f"bench-{n}", "Attempt": 1, "Notifications": [{"Action": "stock.update.1", "Data": [
            {"ProductId": 3001, "BranchId": 11, "OnHand": n % 50, "Reserved": 0}]}]}).encode()  # fmt: skip
        return session.post(url, data=raw, headers={"X-Hub-Signature": sign(raw, secret)}, timeout=10).status_code

    bare = load(lambda session, _: session.get(f"{stack.url}/healthz", timeout=10).status_code, count, clients)
    ingest = load(deliver, count, clients)
    connection = redis.Redis.from_url(stack.env["REDIS_URL"])
    applied = drain_seconds(connection, "events", stack)
    empty = Queue("events", connection=connection, serializer=JSONSerializer)
    for _ in range(count):
        empty.enqueue("bench.noop.noop", result_ttl=0)
    baseline = drain_seconds(connection, "events", stack)
    return {
        "requests": count, "clients": clients, "bare_endpoint": bare, "webhook_ingest": ingest,
        "ingest_throughput_vs_bare": round(ingest["per_second"] / bare["per_second"], 2),
        "events_applied_per_second": round(count / applied, 1), "empty_jobs_per_second": round(count / baseline, 1),
        "apply_vs_empty_job": round(baseline / applied, 2),
    }  # fmt: skip


if __name__ == "__main__":
    main()
