"""`/metrics` after a scripted mix of deliveries and applied changes: every counter, gauge and
histogram bucket read back exactly (fakeredis, fake peers, RQ's SimpleWorker)."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from rq.serializers import JSONSerializer
from rq.worker import Worker

from adapters.budget import RequestBudget
from adapters.errors import TransientError
from adapters.inbox import event_queue
from adapters.state import SyncState
from schemas.kiotviet_sales import KvSettings, KvWebhook
from tests.conftest import ADMIN_TOKEN, BRANCH, SHOP
from tests.fakes import FakeAbaha
from tests.helpers import connect_signed, sample, sign
from wiring import Services
from workers import drain, hooks

SECRET = base64.b64encode(b"the shop's webhook secret").decode()
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(autouse=True)
def connected(services: Services) -> None:
    connect_signed(services, SHOP, BRANCH, SECRET)


def product_body(delivery_id: str, product_id: int = 3001, modified: str = "2026-11-30T10:20:30+07:00") -> bytes:
    body = sample("kiotviet/product.update")
    body["Id"] = delivery_id
    body["Notifications"][0]["Data"][0].update(Id=product_id, ModifiedDate=modified, MasterProductId=None,
                                               MasterUnitId=None)  # fmt: skip
    return json.dumps(body).encode()


def post(client: FlaskClient, body: bytes, *, shop: str = SHOP, secret: str = SECRET) -> None:
    answer = client.post(f"/webhooks/kiotviet/{shop}", data=body, headers={"X-Hub-Signature": sign(body, secret)})
    assert answer.status_code == 200


def scrape(client: FlaskClient) -> Samples:
    answer = client.get("/metrics", headers=AUTH)
    assert answer.status_code == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(answer.get_data(as_text=True))
            for s in family.samples}  # fmt: skip


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def test_a_scripted_mix_is_counted_exactly(
    client: FlaskClient, services: Services, work_off: Callable[[], int], abaha: FakeAbaha,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    # every write lands 5 s after its change arrived, so the lag falls in one known bucket
    real_ms = drain.redis_ms
    monkeypatch.setattr(drain, "redis_ms", lambda s: real_ms(s) + 5_000)
    abaha.refused_products.add(3002)
    post(client, product_body("d1"))
    post(client, product_body("d1"))  # the same delivery again
    post(client, product_body("d2", product_id=3002))  # Abaha refuses it: failed for good
    work_off()
    post(client, product_body("d3", modified="2026-11-30T09:00:00+07:00"))  # older than what was written
    post(client, json.dumps(sample("kiotviet/invoice.update")).encode())  # recorded, not synced
    post(client, json.dumps(sample("kiotviet/stock.update")).encode(), secret="not the secret")
    post(client, product_body("d4"), shop="nobody-registered-this")
    client.post(f"/webhooks/abaha/{SHOP}", json=sample("abaha/order.created"), headers={"X-Abaha-Token": "wrong"})
    unhandled = {**sample("abaha/order.created"), "type": "review.created"}
    assert client.post(f"/webhooks/abaha/{SHOP}", json=unhandled,
                       headers={"X-Abaha-Token": "abaha-webhook-token"}).status_code == 202  # fmt: skip
    abaha.fail_next("put_category", TransientError("Abaha answered 503"))
    post(client, json.dumps(sample("kiotviet/category.update")).encode())  # retried alone, later
    work_off()
    budget = RequestBudget(services.redis)
    assert budget.take("demo") == 0 and budget.take("demo") == 0

    samples = scrape(client)
    received = {(labels, v) for (name, labels), v in samples.items() if name == "sync_deliveries_received_total"}
    assert received == {
        ((("source", "kiotviet"), ("type", "product.update")), 5.0),
        ((("source", "kiotviet"), ("type", "category.update")), 1.0),
        ((("source", "kiotviet"), ("type", "invoice.update")), 1.0),
        ((("source", "kiotviet"), ("type", "stock.update")), 1.0),
        ((("source", "abaha"), ("type", "unknown")), 1.0),
        ((("source", "abaha"), ("type", "other")), 1.0),
    }
    assert value(samples, "sync_deliveries_rejected_total", source="kiotviet", type="stock.update") == 1
    assert value(samples, "sync_deliveries_rejected_total", source="kiotviet", type="product.update") == 1
    assert value(samples, "sync_deliveries_rejected_total", source="abaha", type="unknown") == 1
    assert value(samples, "sync_deliveries_duplicate_total", source="kiotviet", type="product.update") == 1
    changes = {(dict(labels)["kind"], dict(labels)["outcome"]): v for (name, labels), v in samples.items()
               if name == "sync_changes_total"}  # fmt: skip
    # the product written from a webhook body has its stock confirmed by a read, which finds
    # Abaha holding that already (the refused one's is not read)
    assert changes == {("product", "applied"): 1, ("product", "failed"): 1, ("product", "stale"): 1,
                       ("product", "duplicate"): 1, ("invoice", "ignored"): 1, ("stock", "unchanged"): 1,
                       ("category", "retrying"): 1, ("other", "ignored"): 1}  # fmt: skip
    retries = {(name, labels): v for (name, labels), v in samples.items() if name == "sync_retries_total"}
    assert retries == {("sync_retries_total", (("kind", "category"), ("shop_id", SHOP))): 1}
    assert value(samples, "sync_events_total", shop_id=SHOP, outcome="quarantined") == 1
    assert value(samples, "sync_events_total", shop_id=SHOP, outcome="applied") == 1
    assert value(samples, "sync_pending_entities", shop_id=SHOP) == 0  # the category waits in its own job
    assert value(samples, "sync_pending_oldest_age_seconds", shop_id=SHOP) == 0
    assert value(samples, "sync_queue_jobs", queue="events", registry="failed") == 1
    assert value(samples, "sync_queue_jobs", queue="events", registry="scheduled") == 1  # the category's retry
    assert value(samples, "sync_queue_jobs", queue="events", registry="queued") == 0
    assert value(samples, "sync_kiotviet_budget_used", shop_id=SHOP) == 2
    assert value(samples, "sync_quarantine_kept", shop_id=SHOP) == 1
    assert value(samples, "sync_workers_alive") == 0  # the test's worker has stopped
    lag = {dict(labels)["le"]: v for (name, labels), v in samples.items() if name == "sync_change_lag_seconds_bucket"}
    assert lag == {"0.1": 0, "0.25": 0, "0.5": 0, "1.0": 0, "2.0": 0, "5.0": 0, "10.0": 1, "30.0": 1, "60.0": 1,
                   "300.0": 1, "1800.0": 1, "+Inf": 1}  # fmt: skip
    assert value(samples, "sync_change_lag_seconds_count", shop_id=SHOP) == 1
    assert 5 <= value(samples, "sync_change_lag_seconds_sum", shop_id=SHOP) <= 10


def test_the_lag_histogram_is_cumulative_with_its_sum(client: FlaskClient, services: Services) -> None:
    services.state.record_writes(SHOP, [0.05, 0.3, 0.3, 7, 4000], 1_000)
    samples = scrape(client)
    buckets = [v for (name, _), v in samples.items() if name == "sync_change_lag_seconds_bucket"]
    assert buckets == [1, 1, 3, 3, 3, 3, 4, 4, 4, 4, 4, 5]
    assert value(samples, "sync_change_lag_seconds_count", shop_id=SHOP) == 5
    assert value(samples, "sync_change_lag_seconds_sum", shop_id=SHOP) == pytest.approx(4007.65)
    assert value(samples, "sync_last_write_timestamp_seconds", shop_id=SHOP) == 1.0


def test_a_webhook_held_by_another_integration_is_a_gauge(client: FlaskClient, services: Services) -> None:
    survey = hooks.Survey(taken={"order.update": KvWebhook(7, "order.update", "https://plugin.example/hook", True)})
    services.connections.save_warnings(SHOP, hooks.current_warnings(KvSettings(False), survey))
    samples = scrape(client)
    assert value(samples, "sync_webhooks_held_elsewhere", shop_id=SHOP) == 1
    assert value(samples, "sync_connection_warnings", shop_id=SHOP) == 2  # and ordering out of stock is off


def test_only_registered_shops_are_labels(client: FlaskClient, services: Services) -> None:
    for n in range(5):
        post(client, product_body(f"stranger-{n}"), shop=f"made-up-{n}")
    SyncState(services.redis).count("made-up-0", "applied")  # even a count under a stranger's id
    shops = {dict(labels).get("shop_id") for (_, labels) in scrape(client)} - {None}
    assert shops == {SHOP}


def test_workers_alive_counts_registered_workers(client: FlaskClient, services: Services) -> None:
    worker = Worker([event_queue(services.redis)], connection=services.redis, serializer=JSONSerializer)
    worker.register_birth()  # type: ignore[no-untyped-call]
    assert value(scrape(client), "sync_workers_alive") == 1
    worker.register_death()  # type: ignore[no-untyped-call]
    assert value(scrape(client), "sync_workers_alive") == 0


def test_waiting_changes_and_queued_jobs_are_gauges(client: FlaskClient, services: Services) -> None:
    post(client, product_body("waiting"))  # accepted, not applied: no worker ran
    samples = scrape(client)
    assert value(samples, "sync_pending_entities", shop_id=SHOP) == 1
    assert 0 <= value(samples, "sync_pending_oldest_age_seconds", shop_id=SHOP) < 60
    assert value(samples, "sync_queue_jobs", queue="events", registry="queued") == 1  # the shop's drain
    assert 0 <= value(samples, "sync_queue_oldest_job_age_seconds", queue="events") < 60


def test_every_metric_the_operations_guide_names_is_exposed(client: FlaskClient) -> None:
    text = client.get("/metrics", headers=AUTH).get_data(as_text=True)
    families = {family.name for family in text_string_to_metric_families(text)}
    guide = (Path(__file__).parents[2] / "docs" / "operations.md").read_text()
    named = {re.sub(r"_(total|bucket|count|sum)$", "", n) for n in re.findall(r"\bsync_[a-z_]+[a-z]", guide)}
    assert len(named) >= 15
    assert named <= families, named - families
