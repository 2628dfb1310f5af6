"""Driving the console with Flask's test client: CSRF tokens read from pages, a signed-in client,
and KiotViet's answers for the connect form (with `responses`)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import responses
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from adapters.connections import Connection, ConnectionSecrets
from tests.conftest import ADMIN_TOKEN
from wiring import Services

SAME_ORIGIN = {"Origin": "http://localhost"}  # what a browser sends with a form from our own pages
API = "http://kiotviet.test"
CLIENT_SECRET = "kv-client-secret-7f3a"
ABAHA_API_TOKEN = "abaha-api-token-91c2"
BRANCHES = [{"id": 11, "branchName": "Chi nhánh trung tâm"}, {"id": 12, "branchName": "Chi nhánh Quận 3"}]
_CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"')


def csrf_token(page: TestResponse) -> str:
    """The CSRF token a page's forms carry."""
    found = _CSRF.search(page.get_data(as_text=True))
    assert found, "no CSRF token on the page"
    return found.group(1) or found.group(2)


def post_form(client: FlaskClient, path: str, data: dict[str, Any], *, from_page: str | None = None,
              headers: dict[str, str] | None = None) -> TestResponse:  # fmt: skip
    """Post a console form as the browser would, with the token of the page it sits on."""
    token = csrf_token(client.get(from_page or path))
    return client.post(path, data={"csrf_token": token, **data}, headers={**SAME_ORIGIN, **(headers or {})})


def sign_in(client: FlaskClient, token: str = ADMIN_TOKEN, **headers: str) -> TestResponse:
    return post_form(client, "/admin/login", {"token": token}, headers=headers)


def kiotviet_answers(hooks: list[dict[str, Any]] | None = None) -> None:
    """KiotViet for a connect: a token, the shop's branches, settings, its webhooks."""
    responses.post("http://kiotviet-id.test/connect/token", json={"access_token": "t", "expires_in": 86400})
    responses.get(f"{API}/branches", json={"total": len(BRANCHES), "data": BRANCHES})
    responses.get(f"{API}/settings", json={"AllowOrderWhenOutStock": True})
    responses.get(f"{API}/webhooks", json={"total": len(hooks or []), "data": hooks or []})
    responses.add_callback(responses.POST, f"{API}/webhooks", callback=lambda r: (200, {}, '{"id": 9}'))
    responses.add_callback(responses.DELETE, re.compile(f"{API}/webhooks/.*"), callback=lambda r: (200, {}, "{}"))


def connection_form(**changes: str) -> dict[str, str]:
    return {"shop_id": "shop-7", "retailer": "thoitrangmogi", "client_id": "kv-client-id",
            "client_secret": CLIENT_SECRET, "branch_id": "11", "surcharge_code": "", "abaha_api_token": ABAHA_API_TOKEN,
            **changes}  # fmt: skip


@pytest.fixture
def connected(services: Services) -> None:
    """shop-42 connected, as a save would have left it."""
    secrets = ConnectionSecrets(CLIENT_SECRET, ABAHA_API_TOKEN, "w")
    services.connections.save(Connection("shop-42", "demo", "cid", 11), secrets)
