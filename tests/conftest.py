from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import fakeredis
import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from config import Settings
from wiring import Services, services_on

ADMIN_TOKEN = "test-admin-token"


@pytest.fixture
def redis() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env({
        "REDIS_URL": "redis://fake",
        "SECRET_KEY": "unit-test-secret-key",
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "ABAHA_API_URL": "http://abaha.test",
        "KIOTVIET_API_URL": "http://kiotviet.test",
        "KIOTVIET_TOKEN_URL": "http://kiotviet-id.test/connect/token",
        "PUBLIC_BASE_URL": "http://sync.test",
        "LOCAL_STATE_DIR": str(tmp_path),
    })  # fmt: skip


@pytest.fixture
def services(settings: Settings, redis: fakeredis.FakeRedis) -> Services:
    return services_on(settings, redis, "redis://fake")


@pytest.fixture
def app(services: Services) -> Iterator[Flask]:
    yield create_app(services=services)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()
