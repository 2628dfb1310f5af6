"""The threaded sandbox server under concurrent reads and writes loses nothing and fails nothing."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from sandbox.kiotviet_data import Retailer, demo_retailer, grow_catalogue
from sandbox.server import SandboxServer

THREADS, ROUNDS = 8, 15


@pytest.fixture
def server() -> Iterator[SandboxServer]:
    running = SandboxServer().start()
    yield running
    running.stop()


def token(server: SandboxServer, retailer: Retailer) -> str:
    form = {
        "client_id": retailer.client_id,
        "client_secret": retailer.client_secret,
        "grant_type": "client_credentials",
    }
    answer: str = requests.post(f"{server.url}/kiotviet-id/connect/token", data=form, timeout=5).json()["access_token"]
    return answer


def test_concurrent_changes_reads_and_faults_keep_every_count(server: SandboxServer) -> None:
    retailer = server.kiotviet.add_retailer(demo_retailer(variants_and_units=True))
    grow_catalogue(retailer, products=300, customers=50)
    headers = {"Retailer": retailer.name, "Authorization": f"Bearer {token(server, retailer)}"}
    control = f"{server.url}/_sandbox/kiotviet/{retailer.name}"
    requests.post(f"{server.url}/_sandbox/kiotviet/faults", json={"status": 503, "count": 10, "path_contains": "/cu"},
                  timeout=5)  # fmt: skip

    def work(worker: int) -> list[int]:
        statuses = []
        with requests.Session() as session:
            for n in range(ROUNDS):
                statuses += [
                    session.post(f"{control}/products/3201/stock?deliver=0", json={"branchId": 11, "onHand": n},
                                 timeout=10).status_code,
                    session.post(f"{control}/customers/{900 + worker}?deliver=0", json={"name": f"K{n}"},
                                 timeout=10).status_code,
                    session.get(f"{server.url}/kiotviet/products", headers=headers, timeout=10,
                                params={"pageSize": 100, "currentItem": n * 7}).status_code,
                    session.get(f"{server.url}/kiotviet/customers", headers=headers, timeout=10).status_code,
                ]  # fmt: skip
        return statuses

    with ThreadPoolExecutor(THREADS) as pool:
        statuses = [s for batch in pool.map(work, range(THREADS)) for s in batch]
    assert sorted(set(statuses)) == [200, 503] and statuses.count(503) == 10
    assert len(retailer.deliveries) == 200  # 240 changes held back: the log kept the latest 200
    gets = [c for c in retailer.calls if c.method == "GET"]
    assert len(gets) == 2 * THREADS * ROUNDS and retailer.get_requests == len(gets) - 10
    assert sorted(c.status or 0 for c in gets if c.status != 200) == [503] * 10
    assert retailer.products[3202]["inventories"] == retailer.products[3201]["inventories"]
