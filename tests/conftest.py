from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import fakeredis
import pytest
from flask import Flask
from flask.testing import FlaskClient
from rq import SimpleWorker
from rq.serializers import JSONSerializer

from adapters.connections import Connection
from adapters.inbox import QUEUES, event_queue
from app import create_app
from config import Settings
from tests.fakes import FakeAbaha, FakeKiotViet
from wiring import Services, services_on
from workers.context import ShopContext
from workers.job_context import JobContext
from workers.policy import failure_policy

ADMIN_TOKEN = "test-admin-token"


class InProcessWorker(JobContext, SimpleWorker):
    """RQ's worker without a fork, with the service's per-job log context."""


SHOP = "shop-42"
BRANCH = 11


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


@pytest.fixture
def logged(capsys: pytest.CaptureFixture[str]) -> Callable[[str], list[dict[str, Any]]]:
    """Our log lines named as asked, read back from stderr (where structlog writes them, as JSON)."""
    seen: list[dict[str, Any]] = []

    def lines(event: str) -> list[dict[str, Any]]:
        for line in capsys.readouterr().err.splitlines():
            with contextlib.suppress(ValueError):
                found = json.loads(line)
                if isinstance(found, dict):
                    seen.append(found)
        return [line for line in seen if line.get("event") == event]

    return lines


@pytest.fixture
def kiotviet() -> FakeKiotViet:
    return FakeKiotViet()


@pytest.fixture
def abaha() -> FakeAbaha:
    return FakeAbaha()


@pytest.fixture
def connection() -> Connection:
    return Connection(shop_id=SHOP, retailer="demo", client_id="cid", branch_id=BRANCH, surcharge_code="THK000001",
                      surcharge_id=1)  # fmt: skip


@pytest.fixture
def ctx(services: Services, connection: Connection, kiotviet: FakeKiotViet, abaha: FakeAbaha) -> ShopContext:
    """The shop's context with fake peers, as every job of these tests sees it."""
    return ShopContext(connection=connection, kiotviet=kiotviet, abaha=abaha, state=services.state,
                       links=services.links, pending=services.pending, catalog=services.catalog)  # fmt: skip


@pytest.fixture
def work_off(monkeypatch: pytest.MonkeyPatch, services: Services, ctx: ShopContext) -> Callable[[], int]:
    """Run every queued job in this process, as a worker would (RQ's SimpleWorker, the service's
    failure policy), until the queues are empty; answers how many jobs ran. Jobs scheduled for
    later (a retry) stay scheduled."""

    def context(_: Services, shop_id: str, priority: str = "webhook") -> ShopContext | None:
        return replace(ctx, memo={}) if shop_id == ctx.connection.shop_id else None  # a batch's own

    for module in ("workers.drain", "workers.sync", "workers.reconcile"):
        monkeypatch.setattr(f"{module}.process_services", lambda: services)
        monkeypatch.setattr(f"{module}.shop_context", context)

    def run() -> int:
        queues = [event_queue(services.redis, name) for name in QUEUES]
        worker = InProcessWorker(queues, connection=services.redis, serializer=JSONSerializer,
                                 exception_handlers=[failure_policy])  # fmt: skip
        ran = 0
        while any(q.count for q in queues):
            worker.work(burst=True, max_jobs=1000)
            ran += 1
        return ran

    return run
