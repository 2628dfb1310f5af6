"""`/admin/openapi.json`: the admin API as OpenAPI 3.1, true to the routes (every JSON route of
/admin is in it and nothing else is), and the API fuzzed against it with schemathesis: no 5xx,
every answer as the document says."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import responses
import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import CheckFunction
from schemathesis.specs.openapi.checks import positive_data_acceptance
from werkzeug.routing import Rule

from admin import openapi
from tests.conftest import ADMIN_TOKEN
from tests.unit.console_support import kiotviet_answers
from wiring import Services

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
# what else lives under /admin, none of it the JSON API: the console's pages, the RQ dashboard
# (its own JSON for its own pages) and the replays that stand in for the dashboard's Requeue
NOT_THE_API = ("console.", "rq_dashboard.", "dashboard_replays.")
IMPLICIT = {"HEAD", "OPTIONS"}


def routes(app: Flask) -> set[tuple[str, str]]:
    """(path as OpenAPI writes it, method) of every rule of the admin API blueprint."""
    found = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("admin."):
            path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
            found |= {(path, method.lower()) for method in (rule.methods or set()) - IMPLICIT}
    return found


def test_every_admin_api_route_is_in_the_document_and_nothing_else_is(app: Flask, client: FlaskClient) -> None:
    document = client.get("/admin/openapi.json", headers=AUTH).get_json()
    assert document == json.loads(json.dumps(openapi.document()))
    described = {(path, method) for path, operations in document["paths"].items() for method in operations}
    assert described == routes(app)


def test_everything_else_under_admin_is_the_console_or_the_dashboard(app: Flask) -> None:
    """A new blueprint under /admin must be described, or named here as not the JSON API."""
    others = {r.endpoint for r in app.url_map.iter_rules() if r.rule.startswith("/admin")
              and not r.endpoint.startswith(("admin.", *NOT_THE_API))}  # fmt: skip
    assert others == set()


def test_the_document_needs_the_admin_token(client: FlaskClient) -> None:
    assert client.get("/admin/openapi.json").status_code == 401
    assert client.get("/admin/openapi.json", headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_the_routes_check_can_fail(app: Flask, client: FlaskClient) -> None:
    """A route added to the blueprint without a word in the document is caught."""
    app.url_map.add(Rule("/admin/undescribed", endpoint="admin.undescribed", methods=["GET"]))
    document = client.get("/admin/openapi.json", headers=AUTH).get_json()
    described = {(path, method) for path, operations in document["paths"].items() for method in operations}
    assert ("/admin/undescribed", "get") in routes(app) - described


@pytest.fixture
def kiotviet_http() -> Iterator[responses.RequestsMock]:
    """KiotViet answering a connect, for the saves schemathesis makes."""
    with responses.mock:  # the default mock, which kiotviet_answers fills
        kiotviet_answers()
        yield responses.mock


# the document as the code builds it (pure data: nothing is connected at import); the first test
# holds the served one to it
schema = schemathesis.openapi.from_dict(openapi.document())


@schema.parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_admin_api_answers_as_its_document_says(
    case: schemathesis.Case[Any], app: Flask, kiotviet_http: responses.RequestsMock
) -> None:
    case.operation.schema.app = app  # this test's app, on its own fakeredis (the auth probe calls it too)
    # whether a well-formed save passes depends on KiotViet's answers (the branch, the surcharge
    # code), so a 422 for one is no failure of the document
    business: list[CheckFunction] = [positive_data_acceptance] if case.operation.method.upper() == "PUT" else []
    case.call_and_validate(app=app, headers=AUTH, excluded_checks=business)


def validated(app: Flask, path: str, method: str, **data: Any) -> Any:
    """Call one operation with chosen data, its answer checked against the document."""
    schema.app = app
    case = schema[path][method].Case(headers=AUTH, **data)
    return case.call_and_validate(app=app, headers=AUTH).json()


def test_a_saved_connection_its_state_and_its_deletion_answer_as_documented(
    app: Flask, services: Services, kiotviet_http: responses.RequestsMock
) -> None:
    """What random data rarely reaches: a save KiotViet accepts, then a shop with a state."""
    saved = validated(app, "/admin/connections/{shop_id}", "PUT", path_parameters={"shop_id": "shop-7"}, body={
        "retailer": "thoitrangmogi", "client_id": "kv-client-id", "client_secret": "s", "branch_id": 11,
        "abaha_api_token": "a"})  # fmt: skip
    assert saved["abaha_webhook"]["token"]
    services.quarantine.keep("shop-7", "bad signature", b"{}", signed=False, details={"signature": "x"})
    listed = validated(app, "/admin/connections", "GET")
    assert [c["shop_id"] for c in listed["connections"]] == ["shop-7"]
    assert validated(app, "/admin/connections/{shop_id}", "GET", path_parameters={"shop_id": "shop-7"})["state"]
    assert validated(app, "/admin/quarantine", "GET", query={"shop_id": "shop-7"})["deliveries"]
    started = validated(app, "/admin/connections/{shop_id}/sync", "POST", path_parameters={"shop_id": "shop-7"},
                        body={"entities": ["categories"]})  # fmt: skip
    run = validated(app, "/admin/connections/{shop_id}/sync", "GET", path_parameters={"shop_id": "shop-7"})
    assert run["id"] == started["id"]
    assert validated(app, "/admin/connections/{shop_id}", "DELETE", path_parameters={"shop_id": "shop-7"})["deleted"]


def test_a_mistyped_filter_is_refused_not_read_as_every_shop(client: FlaskClient) -> None:
    for path in ("/admin/quarantine", "/admin/failed"):
        answer = client.get(path + "?shopid=shop-7", headers=AUTH)
        assert answer.status_code == 400
        assert "'shopid'" in answer.get_json()["errors"][0]


@pytest.mark.parametrize("shop_id, retailer", [("shop-7%0A", "thoitrangmogi"), ("shop-7", "thoitrangmogi\n")])
def test_a_trailing_newline_in_a_shop_id_or_a_retailer_is_refused_and_nothing_is_saved(
    client: FlaskClient, services: Services, kiotviet_http: responses.RequestsMock, shop_id: str, retailer: str
) -> None:
    body = {"retailer": retailer, "client_id": "kv-client-id", "client_secret": "s", "branch_id": 11,
            "abaha_api_token": "a"}  # fmt: skip
    answer = client.put(f"/admin/connections/{shop_id}", json=body, headers=AUTH)
    assert answer.status_code == 422, answer.get_json()
    assert services.connections.all() == []
