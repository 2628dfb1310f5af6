from __future__ import annotations

import json
from typing import Any

import responses
from flask import Flask
from rq import Queue
from rq.serializers import JSONSerializer

from wiring import Services

API = "http://kiotviet.test"


def kiotviet_answers(branches: list[dict[str, Any]]) -> None:
    responses.post("http://kiotviet-id.test/connect/token", json={"access_token": "t", "expires_in": 86400})
    responses.get(f"{API}/branches", json={"total": len(branches), "data": branches})
    responses.get(f"{API}/settings", json={"AllowOrderWhenOutStock": True})
    responses.get(f"{API}/webhooks", json={"total": 0, "data": []})
    responses.add_callback(responses.POST, f"{API}/webhooks", callback=lambda r: (200, {}, '{"id": 9}'))


@responses.activate
def test_connections_save_and_show_from_a_terminal(app: Flask, services: Services) -> None:
    kiotviet_answers([{"id": 11, "branchName": "Trung tâm"}])
    runner = app.test_cli_runner()
    saved = runner.invoke(args=["connections", "save", "shop-42", "--retailer", "demo", "--client-id", "cid",
                                "--branch-id", "11"], input="client-secret\nabaha-token\n")  # fmt: skip
    assert saved.exit_code == 0, saved.output
    answer = json.loads(saved.output[saved.output.index("{") :])
    assert answer["shop_id"] == "shop-42" and len(answer["webhooks"]) == 15
    assert "client-secret" not in saved.output.split("{", 1)[1]
    shown = runner.invoke(args=["connections", "show", "shop-42"])
    assert json.loads(shown.output)["retailer"] == "demo"
    assert services.connections.secrets("shop-42").client_secret == "client-secret"  # type: ignore[union-attr]


@responses.activate
def test_a_wrong_branch_is_refused_with_the_shops_branches(app: Flask) -> None:
    kiotviet_answers([{"id": 11, "branchName": "Trung tâm"}])
    result = app.test_cli_runner().invoke(args=["connections", "save", "shop-42", "--retailer", "demo",
                                                "--client-id", "cid", "--branch-id", "99", "--client-secret", "s",
                                                "--abaha-api-token", "a"])  # fmt: skip
    assert result.exit_code == 1
    assert "branch 99 does not exist in KiotViet; the shop's branches: 11 (Trung tâm)" in result.output


def test_sync_without_waiting_queues_the_first_page(app: Flask, services: Services) -> None:
    from adapters.connections import Connection, ConnectionSecrets

    services.connections.save(Connection("shop-42", "demo", "cid", 11), ConnectionSecrets("s", "a", "w"))
    result = app.test_cli_runner().invoke(args=["sync", "shop-42", "--entity", "products", "--no-wait"])
    assert result.exit_code == 0, result.output
    (job,) = Queue("sync", connection=services.redis, serializer=JSONSerializer).get_jobs()
    assert job.args[2:] == ["products", 0]
