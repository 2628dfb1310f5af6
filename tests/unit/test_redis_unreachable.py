"""With Redis unreachable, every route answers 503 (a sender retries, an operator sees why), never 500."""

from __future__ import annotations

import pytest
from flask import Flask

from app import create_app
from config import Settings
from sandbox.stack import free_port
from tests.conftest import ADMIN_TOKEN
from wiring import redis_client, services_on


@pytest.fixture
def unreachable(settings: Settings) -> Flask:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    return create_app(services=services_on(settings, redis_client(dead, answering_webhooks=True), dead))


@pytest.mark.parametrize("path", ["/admin/connections", "/admin/connections/shop-42", "/admin/failed"])
def test_admin_calls_answer_503_while_redis_is_unreachable(unreachable: Flask, path: str) -> None:
    response = unreachable.test_client().get(path, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "30"
    assert "Redis" in response.get_json()["errors"][0]


def test_an_abaha_event_answers_503_while_redis_is_unreachable(unreachable: Flask) -> None:
    response = unreachable.test_client().post("/webhooks/abaha/shop-42", data=b"{}", headers={"X-Abaha-Token": "t"})
    assert response.status_code == 503
