"""`/metrics`, `/readyz` and the logs of the running service: what two gunicorn processes received
and two worker processes applied is counted as one, and one change is followed across them."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from sandbox.stack import LocalStack
from tests.helpers import sign, wait_for
from tests.integration.conftest import Shop, log_text
from tests.integration.test_catalog_sync import post, product_delivery

pytestmark = pytest.mark.integration


def shop_samples(stack: LocalStack, shop_id: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = stack.admin("GET", "/metrics")
    assert answer.status_code == 200
    return {(s.name, tuple(sorted((k, v) for k, v in s.labels.items() if k != "shop_id"))): s.value
            for family in text_string_to_metric_families(answer.text) for s in family.samples
            if s.labels.get("shop_id") == shop_id or s.name == "sync_workers_alive"}  # fmt: skip


def test_deliveries_to_every_web_process_and_writes_by_every_worker_are_counted_once(shop: Shop) -> None:
    bodies = [product_delivery(shop, f"metrics-{n}", Id=3001 + n, Code=f"SPM{n:03}") for n in range(8)]
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda body: post(shop, body), [*bodies, bodies[0]]))  # the first one twice
    assert all(a.status_code == 200 for a in answers)
    wait_for(lambda: sum(1 for n in range(8) if shop.abaha.products.get(str(3001 + n))) == 8, deadline=60)

    def counted() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
        samples = shop_samples(shop.stack, shop.shop_id)
        applied = samples.get(("sync_changes_total", (("kind", "product"), ("outcome", "applied"))))
        return samples if applied == 8 else None

    samples = wait_for(counted, deadline=30)
    assert samples[("sync_changes_total", (("kind", "product"), ("outcome", "duplicate")))] == 1
    assert samples[("sync_change_lag_seconds_count", ())] >= 8  # stock confirmations may be written too
    assert (
        samples[("sync_change_lag_seconds_bucket", (("le", "+Inf"),))] == samples[("sync_change_lag_seconds_count", ())]
    )
    assert samples[("sync_workers_alive", ())] == 2


def test_readiness_counts_the_live_workers(stack: LocalStack) -> None:
    ready = requests.get(stack.url + "/readyz", timeout=10).json()
    assert (ready["status"], ready["redis"], ready["workers"], ready["workers_alive"]) == ("ready", True, 2, True)


def test_one_change_is_followed_in_the_logs_from_its_delivery_to_its_write(shop: Shop) -> None:
    body = product_delivery(shop, "traced-delivery", Id=3901, Code="SPT001")
    headers = {"X-Hub-Signature": sign(body, shop.webhook_secret("product.update")), "X-Request-ID": "it-trace-1"}
    answer = requests.post(f"{shop.stack.url}/webhooks/kiotviet/{shop.shop_id}", data=body, headers=headers,
                           timeout=10)  # fmt: skip
    assert answer.headers["X-Request-ID"] == "it-trace-1"

    def logged(event: str, **fields: str) -> dict[str, Any] | None:
        for line in log_text(shop.stack).splitlines():
            if line.startswith("{") and f'"{event}"' in line:
                entry: dict[str, Any] = json.loads(line)
                if entry.get("event") == event and all(entry.get(k) == v for k, v in fields.items()):
                    return entry
        return None

    accepted = wait_for(lambda: logged("kiotviet.delivery_accepted", request_id="it-trace-1"))
    (event_id,) = accepted["event_ids"]
    written = wait_for(lambda: logged("change.written", event_id=event_id), deadline=60)
    assert (written["entity"], written["shop_id"]) == ("product:3901", shop.shop_id) and written["job_id"]
