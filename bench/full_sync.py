"""Benchmark: full syncs of 10,000 and 40,000 products against the sandbox.

Reports, for each size: wall time; KiotViet GET requests made against the minimum needed
(ceil(N/100) pages); the worker's peak memory (the worker and the work horses it forks,
sampled every 20 ms). Ratios are against figures measured in the same run: requests against
the minimum, memory at the larger size against the smaller, and sync time against a bare walk
of the same KiotViet pages with no writes.

    .venv/bin/python -m bench.full_sync [--sizes 10000 40000] [--out bench/results/full_sync.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import requests

from adapters.budget import BudgetPolicy
from sandbox.kiotviet_data import demo_retailer, grow_catalogue
from sandbox.stack import LocalStack


class PeakMemory:
    """Samples the RSS of a process and its children until stopped; keeps the peaks."""

    def __init__(self, pid: int) -> None:
        self._root = psutil.Process(pid)
        self.worker_peak = 0
        self.horse_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                self.worker_peak = max(self.worker_peak, self._root.memory_info().rss)
                for child in self._root.children(recursive=True):
                    self.horse_peak = max(self.horse_peak, child.memory_info().rss)
            except psutil.NoSuchProcess:
                pass
            self._stop.wait(0.02)


def bare_walk(stack: LocalStack, retailer: str, client_id: str, client_secret: str) -> float:
    """Seconds to read every product page with nothing written: the floor of a sync."""
    assert stack.sandbox is not None
    token = requests.post(stack.env["KIOTVIET_TOKEN_URL"], timeout=10, data={
        "client_id": client_id, "client_secret": client_secret, "grant_type": "client_credentials"}).json()  # fmt: skip
    headers = {"Retailer": retailer, "Authorization": f"Bearer {token['access_token']}"}
    started, offset, total = time.perf_counter(), 0, 1
    with requests.Session() as session:
        while offset < total:
            params: dict[str, str | int] = {"pageSize": 100, "currentItem": offset, "includeInventory": "true"}
            page = session.get(f"{stack.env['KIOTVIET_API_URL']}/products", headers=headers, timeout=30,
                               params=params).json()  # fmt: skip
            total, offset = page["total"], offset + len(page["data"])
    return time.perf_counter() - started


def measure(stack: LocalStack, size: int) -> dict[str, Any]:
    assert stack.sandbox is not None
    retailer = stack.sandbox.kiotviet.add_retailer(demo_retailer(f"bench{size}", 600_000_000 + size))
    grow_catalogue(retailer, products=size)
    shop_id = f"bench-{size}"
    stack.sandbox.abaha.add_shop(shop_id, "bench-token")
    body = {"retailer": retailer.name, "client_id": retailer.client_id, "client_secret": retailer.client_secret,
            "branch_id": 11, "abaha_api_token": "bench-token", "register_webhooks": False}  # fmt: skip
    stack.admin("PUT", f"/admin/connections/{shop_id}", json=body).raise_for_status()
    baseline = bare_walk(stack, retailer.name, retailer.client_id, retailer.client_secret)
    retailer.get_requests = 0
    products = len(retailer.products)
    with PeakMemory(stack.workers[0].pid) as memory:
        started = time.perf_counter()
        run_id = stack.admin("POST", f"/admin/connections/{shop_id}/sync", json={"entities": ["products"]}).json()["id"]
        while (run := stack.admin("GET", f"/admin/connections/{shop_id}/sync").json())["state"] not in (
            "done",
            "failed",
        ):
            time.sleep(0.1)  # the benchmark's own polling interval
        wall = time.perf_counter() - started
    assert run["id"] == run_id and run["state"] == "done", run
    written = len(stack.sandbox.abaha.shops[shop_id].products)
    minimum = math.ceil(products / 100)
    return {
        "products": products, "written_to_abaha": written, "wall_seconds": round(wall, 2),
        "bare_page_walk_seconds": round(baseline, 2), "wall_vs_bare_walk": round(wall / baseline, 1),
        "kiotviet_get_requests": retailer.get_requests, "minimum_requests": minimum,
        "requests_vs_minimum": round(retailer.get_requests / minimum, 3),
        "worker_peak_rss_mib": round(memory.worker_peak / 2**20, 1),
        "horse_peak_rss_mib": round(memory.horse_peak / 2**20, 1),
    }  # fmt: skip


def budget_floor(requests_made: int) -> float:
    """Seconds a background sync needs at least to make `requests_made` GETs under the default budget."""
    policy = BudgetPolicy()
    at_once = policy.burst - policy.background_reserve
    return max(0.0, (requests_made - at_once) / (policy.rate_per_ms * 1000))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 40_000])
    parser.add_argument("--out", type=Path, default=Path("bench/results/full_sync.json"))
    args = parser.parse_args()
    environ = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "KIOTVIET_API_URL", "ABAHA_API_URL")}
    # the sandbox does not throttle; the real budget's effect on wall time is computed, not waited for
    environ.update(LOG_FORMAT="json", RECONCILE_INTERVAL="0", KIOTVIET_HOURLY_BUDGET="100000000")
    with tempfile.TemporaryDirectory() as state:
        stack = LocalStack(Path(state), environ=environ, private_redis=True, log_dir=Path(state) / "logs").start()
        try:
            results = [measure(stack, size) for size in sorted(args.sizes)]
        finally:
            stack.stop()
    small, large = results[0], results[-1]
    summary = {
        "results": results,
        "peak_memory_ratio_largest_vs_smallest": round(
            max(large["worker_peak_rss_mib"], large["horse_peak_rss_mib"])
            / max(small["worker_peak_rss_mib"], small["horse_peak_rss_mib"]), 3),
        # what the default budget (5,000 GETs an hour, a reserve kept for webhooks) makes the least wall time
        "seconds_at_least_under_default_budget": {r["products"]: round(budget_floor(r["kiotviet_get_requests"]))
                                                   for r in results},
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
