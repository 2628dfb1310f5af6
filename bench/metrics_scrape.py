"""How long `GET /metrics` takes with many registered shops, against a private real Redis.

.venv/bin/python -m bench.metrics_scrape                 # 100 and 1000 shops
.venv/bin/python -m bench.metrics_scrape --shops 5000
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from adapters.connections import Connection, ConnectionSecrets
from adapters.embedded_redis import start_redis_server, wait_for_redis
from app import create_app
from config import Settings
from sandbox.stack import free_port
from wiring import Services, redis_client, services_on

SCRAPES = 5


def shops_with_counters(services: Services, count: int) -> None:
    """`count` connections, each with a few counters and lag samples, as a busy deployment has."""
    for n in range(count):
        shop = f"shop-{n}"
        services.connections.save(Connection(shop, f"retailer{n}", "cid", 11), ConnectionSecrets("s", "a", "w"))
        services.state.count_kinds(shop, {("product", "applied"): 3, ("stock", "unchanged"): 2})
        services.state.record_writes(shop, [0.2, 3.0], 1000)


def measure(count: int) -> str:
    port = free_port()
    server = start_redis_server(Path(tempfile.mkdtemp(prefix="bench-metrics-")), port=port)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        wait_for_redis(url)
        settings = Settings.from_env({"REDIS_URL": url, "SECRET_KEY": "bench-secret-key", "ADMIN_TOKEN": "bench",
                                      "LOG_FORMAT": "json"})  # fmt: skip
        services = services_on(settings, redis_client(url, answering_webhooks=True), url)
        shops_with_counters(services, count)
        client = create_app(services=services).test_client()
        seconds, size = [], 0
        for _ in range(SCRAPES):
            start = time.perf_counter()
            answer = client.get("/metrics", headers={"Authorization": "Bearer bench"})
            seconds.append(time.perf_counter() - start)
            size = len(answer.data)
        return (f"{count} shops: {min(seconds) * 1000:.0f} ms best, {statistics.median(seconds) * 1000:.0f} ms "
                f"median of {SCRAPES}; {size / 1024:.0f} KiB")  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shops", type=int, nargs="+", default=[100, 1000])
    for count in parser.parse_args().shops:
        print(measure(count), flush=True)


if __name__ == "__main__":
    main()
