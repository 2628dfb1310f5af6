from __future__ import annotations

from flask.testing import FlaskClient
from rq.serializers import JSONSerializer
from rq.worker import Worker

from adapters.connections import Connection, ConnectionSecrets, HookSecret
from adapters.inbox import event_queue
from app import create_app
from config import Settings
from sandbox.stack import free_port
from tests.conftest import ADMIN_TOKEN
from wiring import Services, redis_client, services_on


def test_health_and_readiness(client: FlaskClient) -> None:
    assert client.get("/healthz").json == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json == {"status": "ready", "redis": True, "workers": 0, "workers_alive": False,
                          "warning": "no worker is alive: changes are accepted but not applied"}  # fmt: skip


def test_readiness_says_how_many_workers_are_alive(client: FlaskClient, services: Services) -> None:
    workers = [Worker([event_queue(services.redis)], connection=services.redis, serializer=JSONSerializer)
               for _ in range(2)]  # fmt: skip
    for worker in workers:
        worker.register_birth()  # type: ignore[no-untyped-call]
    assert client.get("/readyz").json == {"status": "ready", "redis": True, "workers": 2, "workers_alive": True}
    for worker in workers:
        worker.register_death()  # type: ignore[no-untyped-call]
    assert (client.get("/readyz").json or {}).get("workers_alive") is False


def test_readiness_fails_when_redis_does_not_answer(settings: Settings) -> None:
    dead = redis_client(f"redis://127.0.0.1:{free_port()}/0", answering_webhooks=True)
    app = create_app(services=services_on(settings, dead, "redis://dead"))
    answer = app.test_client().get("/readyz")
    assert (answer.status_code, answer.json) == (503, {"status": "unavailable", "redis": False})


def test_metrics_name_shops_so_they_need_the_admin_token(client: FlaskClient) -> None:
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_metrics_count_outcomes_per_shop_quarantine_reasons_and_queues(client: FlaskClient, services: Services) -> None:
    secrets = ConnectionSecrets("s", "a", "w", {"stock.update": (HookSecret("k"),)})
    services.connections.save(Connection("shop-42", "demo", "cid", 11), secrets)
    services.state.count("shop-42", "applied", 3)
    client.post("/webhooks/kiotviet/shop-42", data=b"{}", headers={"X-Hub-Signature": "forged"})
    text = client.get("/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).get_data(as_text=True)
    assert 'sync_events_total{outcome="applied",shop_id="shop-42"} 3.0' in text
    assert 'sync_events_total{outcome="quarantined",shop_id="shop-42"} 1.0' in text
    assert 'sync_quarantined_deliveries_total{reason="bad signature"} 1.0' in text
    assert 'sync_queue_jobs{queue="events",registry="queued"} 0.0' in text
