"""The service as it runs: gunicorn, worker processes, a private real Redis, the sandbox peers."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from sandbox.abaha import AbahaShop
from sandbox.kiotviet_data import Retailer, demo_retailer
from sandbox.stack import LocalStack

_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    state = tmp_path_factory.mktemp("stack")
    environ = {key: value for key, value in __import__("os").environ.items()
               if key not in ("REDIS_URL", "KIOTVIET_API_URL", "ABAHA_API_URL", "PUBLIC_BASE_URL")}  # fmt: skip
    environ["LOG_FORMAT"] = "json"
    environ["RECONCILE_INTERVAL"] = "0"  # tests/integration/test_reconcile.py runs its own stack with it on
    running = LocalStack(state, environ=environ, private_redis=True, log_dir=state / "logs").start(workers=2)
    yield running
    running.stop()


@dataclass
class Shop:
    """A connected test shop: its KiotViet retailer, its Abaha side, and handy calls."""

    stack: LocalStack
    shop_id: str
    retailer: Retailer
    abaha: AbahaShop
    abaha_token: str
    saved: dict[str, Any]

    @property
    def sandbox_url(self) -> str:
        assert self.stack.sandbox is not None
        return self.stack.sandbox.url

    def kiotviet_change(self, path: str, body: dict[str, Any] | None = None, method: str = "POST") -> dict[str, Any]:
        """Change data in the simulated KiotViet, which sends the signed webhook."""
        url = f"{self.sandbox_url}/_sandbox/kiotviet/{self.retailer.name}/{path}"
        answer = requests.request(method, url, json=body, timeout=30)
        answer.raise_for_status()
        delivered = answer.json()["delivered"]
        assert delivered and all(d["status"] == 200 for d in delivered), delivered
        said: dict[str, Any] = answer.json()
        return said

    def webhook_secret(self, kind: str) -> str:
        return str(next(h["secret"] for h in self.retailer.webhooks.values() if h["type"] == kind))

    def counts(self) -> dict[str, int]:
        answer = self.stack.admin("GET", f"/admin/connections/{self.shop_id}")
        counts: dict[str, int] = answer.json()["state"]["counts"]
        return counts


def connect_shop(stack: LocalStack, **overrides: Any) -> Shop:
    """A fresh retailer in the sandbox, its Abaha shop, and the connection saved."""
    assert stack.sandbox is not None
    number = next(_numbers)
    retailer = stack.sandbox.kiotviet.add_retailer(demo_retailer(f"shop{number}", 500000000 + number))
    shop_id = f"shop-{number}"
    token = f"abaha-token-{number}"
    abaha = stack.sandbox.abaha.add_shop(shop_id, token)
    body = {"retailer": retailer.name, "client_id": retailer.client_id, "client_secret": retailer.client_secret,
            "branch_id": 11, "surcharge_code": "THK000001", "abaha_api_token": token, **overrides}  # fmt: skip
    answer = stack.admin("PUT", f"/admin/connections/{shop_id}", json=body)
    assert answer.status_code == 200, answer.text
    hook = answer.json()["abaha_webhook"]
    abaha.webhook_url, abaha.webhook_token = hook["url"], hook["token"]
    return Shop(stack, shop_id, retailer, abaha, token, answer.json())


@pytest.fixture
def shop(stack: LocalStack) -> Shop:
    return connect_shop(stack)


def log_text(stack: LocalStack) -> str:
    assert stack.log_dir is not None
    return "\n".join(p.read_text(errors="replace") for p in Path(stack.log_dir).glob("*.log"))
