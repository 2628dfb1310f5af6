from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest
import responses
import structlog
from flask import Flask
from rq import Queue
from rq.serializers import JSONSerializer

from adapters.errors import KiotVietRejected
from admin import cli
from app import create_app
from config import Settings
from logs import log_format_for
from tests.fakes import FakeKiotViet
from wiring import Services, services_on

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
    answer = json.loads(saved.stdout[saved.stdout.index("{") :])  # the log lines are on stderr
    assert answer["shop_id"] == "shop-42" and len(answer["webhooks"]) == 15
    assert "client-secret" not in saved.output.split("{", 1)[1]
    shown = runner.invoke(args=["connections", "show", "shop-42"])
    assert json.loads(shown.stdout)["retailer"] == "demo"
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


def connect(services: Services) -> None:
    from adapters.connections import Connection, ConnectionSecrets

    services.connections.save(Connection("shop-42", "demo", "cid", 11), ConnectionSecrets("s", "a", "w"))


def working_while_waiting(monkeypatch: pytest.MonkeyPatch, work_off: Callable[[], int]) -> None:
    """The command's waits run the queued jobs, as the workers would meanwhile."""
    monkeypatch.setattr(cli, "time", SimpleNamespace(sleep=lambda _: work_off()))


def test_sync_ends_with_a_summary_per_entity(
    app: Flask, services: Services, kiotviet: FakeKiotViet, work_off: Callable[[], int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    connect(services)
    kiotviet.add_product(3001, code="SP000123", name="Áo thun")
    kiotviet.add_product(3002, code="SP000124", name="Áo sơ mi")
    working_while_waiting(monkeypatch, work_off)
    result = app.test_cli_runner().invoke(args=["sync", "shop-42", "--entity", "products"])
    assert result.exit_code == 0, result.output
    summary = result.stdout[result.stdout.index("Full sync") :].splitlines()
    assert summary[0].startswith("Full sync ") and summary[0].endswith(" queued.")
    assert re.fullmatch(r"Full sync \w+ done in \d+\.\d s", summary[-3])
    assert summary[-2:] == ["  products  2 / 2", "No errors."]
    assert "{" not in result.stdout  # no JSON for a person (the log lines are on stderr)


def test_sync_json_is_the_run_alone_for_scripts(
    app: Flask, services: Services, kiotviet: FakeKiotViet, work_off: Callable[[], int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    connect(services)
    kiotviet.add_product(3001, code="SP000123", name="Áo thun")
    kiotviet.fail_next(
        "products_page", KiotVietRejected("KiotViet refused the connection's credentials (401/403)", 401)
    )
    working_while_waiting(monkeypatch, work_off)
    # the failure policy logs here; a logger of its own keeps the module's uncached for the tests
    # that capture its lines (structlog's capture_logs cannot see a logger cached before)
    monkeypatch.setattr("workers.policy.log", structlog.get_logger("workers.policy"))
    result = app.test_cli_runner().invoke(args=["sync", "shop-42", "--entity", "products", "--json"])
    run = json.loads(result.stdout)  # stdout holds the run and nothing else
    assert (run["state"], run["entities"]["products"]) == ("failed", {"done": 0, "total": None})
    assert run["errors"] and run["errors"][0].startswith("products from item 0: ")
    assert result.exit_code == 1


def test_a_failed_sync_lists_its_errors_for_a_person() -> None:
    run = {"id": "r1", "state": "failed", "queued_at": "2026-12-01T10:00:00+00:00",
           "failed_at": "2026-12-01T10:00:02.5+00:00",
           "entities": {"categories": {"done": 2, "total": 2}, "products": {"done": 100, "total": 250},
                        "customers": {"done": 0, "total": None}},
           "errors": ["products from item 100: Abaha answered 503"] * 2}  # fmt: skip
    assert cli.summary(run).splitlines() == [
        "Full sync r1 failed in 2.5 s",
        "  categories  2 / 2",
        "  products    100 / 250, 2 error(s)",
        "  customers   0 / ?",
        "2 error(s):",
        "  - products from item 100: Abaha answered 503",
        "  - products from item 100: Abaha answered 503",
    ]


def test_a_command_says_nothing_about_the_web_admin_api(settings: Settings, redis: Any,
                                                       capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    app = create_app(services=services_on(replace(settings, admin_token=None), redis, "redis://fake"))
    result = app.test_cli_runner().invoke(args=["connections", "list"])
    assert (result.exit_code, json.loads(result.stdout)) == (0, [])
    said = capsys.readouterr().err + result.output
    assert "admin" not in said.lower() and "ADMIN_TOKEN" not in said


@pytest.mark.parametrize("env, terminal, expected", [
    ({}, True, "console"),  # a person at a terminal of a local run
    ({}, False, "json"),  # piped
    ({"REDIS_URL": "redis://prod:6379/0"}, True, "json"),  # production, even at a terminal
    ({"LOG_FORMAT": "json"}, True, "json"),  # as asked
    ({"LOG_FORMAT": "console"}, False, "console"),
])  # fmt: skip
def test_commands_log_for_a_person_on_a_terminal_and_json_otherwise(env: dict[str, str], terminal: bool,
                                                                    expected: str) -> None:  # fmt: skip
    settings = Settings.from_env(env)
    stream = SimpleNamespace(isatty=lambda: terminal)
    assert log_format_for(settings.log_format, explicit=settings.log_format_chosen, local=settings.is_local,
                          stream=stream) == expected  # type: ignore[arg-type]  # fmt: skip
