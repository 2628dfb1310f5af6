from __future__ import annotations

import base64

import pytest
from flask.testing import FlaskClient

from tests.conftest import ADMIN_TOKEN

BASIC = {"Authorization": "Basic " + base64.b64encode(f"ops:{ADMIN_TOKEN}".encode()).decode()}


def test_the_admin_api_needs_the_token(client: FlaskClient) -> None:
    assert client.get("/admin/connections").status_code == 401
    assert client.get("/admin/connections", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.get("/admin/connections", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).status_code == 200
    assert client.get("/admin/rq/").headers["WWW-Authenticate"].startswith("Basic")


@pytest.mark.parametrize(
    "method, path, headers, status",
    [("get", "/admin/rq/", {}, 200),
     ("get", "/admin/rq/", {"Sec-Fetch-Site": "none"}, 200),
     ("get", "/admin/rq/requeue/events", {"Sec-Fetch-Site": "cross-site"}, 403),
     ("get", "/admin/rq/requeue/events", {}, 403),
     ("get", "/admin/rq/", {"Referer": "https://evil.example/page"}, 403),
     ("post", "/admin/rq/queue/events/failed/empty", {"Origin": "https://evil.example"}, 403),
     ("post", "/admin/rq/queue/events/failed/empty", {}, 403),
     ("post", "/admin/failed/requeue", {"Origin": "http://localhost"}, 200)],
)  # fmt: skip
def test_a_browser_cannot_be_made_to_change_state_from_another_site(
    client: FlaskClient, method: str, path: str, headers: dict[str, str], status: int
) -> None:
    answer = getattr(client, method)(path, headers={**BASIC, **headers})
    assert answer.status_code == status
