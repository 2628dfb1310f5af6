from __future__ import annotations

from flask.testing import FlaskClient

from adapters.connections import Connection, ConnectionSecrets, HookSecret
from tests.conftest import ADMIN_TOKEN
from wiring import Services


def test_health_and_readiness(client: FlaskClient) -> None:
    assert client.get("/healthz").json == {"status": "ok"}
    assert client.get("/readyz").json == {"status": "ready", "redis": True}


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
