"""Saving, showing and deleting connections through the admin API, against the sandbox."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from sandbox.kiotviet_data import demo_retailer
from sandbox.stack import LocalStack
from tests.helpers import sample, sign, wait_for
from tests.integration.conftest import connect_shop, log_text

pytestmark = pytest.mark.integration
WEBHOOK_TYPES = 15


def valid_body(stack: LocalStack, name: str) -> dict[str, Any]:
    assert stack.sandbox is not None
    retailer = stack.sandbox.kiotviet.add_retailer(demo_retailer(name))
    return {"retailer": name, "client_id": retailer.client_id, "client_secret": retailer.client_secret,
            "branch_id": 11, "surcharge_code": "THK000001", "abaha_api_token": "tok"}  # fmt: skip


def test_saving_answers_the_connection_registers_every_webhook_and_shows_no_secret(stack: LocalStack) -> None:
    shop = connect_shop(stack)
    saved = shop.saved
    assert set(saved) == {"shop_id", "retailer", "branch_id", "surcharge_code", "kiotviet_webhook_url",
                          "webhooks", "abaha_webhook", "warnings"}  # fmt: skip
    assert saved["kiotviet_webhook_url"] == f"{stack.url}/webhooks/kiotviet/{shop.shop_id}"
    assert len(saved["webhooks"]) == WEBHOOK_TYPES
    assert saved["abaha_webhook"]["header"] == "X-Abaha-Token" and len(saved["abaha_webhook"]["token"]) >= 32
    registered = shop.retailer.webhooks.values()
    assert {h["url"] for h in registered} == {saved["kiotviet_webhook_url"]}
    assert len({h["secret"] for h in registered}) == WEBHOOK_TYPES  # a fresh secret each
    shown = stack.admin("GET", f"/admin/connections/{shop.shop_id}").json()
    assert "token" not in shown["abaha_webhook"]
    text = json.dumps(saved) + json.dumps(shown) + stack.admin("GET", "/admin/connections").text
    for secret in [shop.retailer.client_secret, shop.abaha_token, *(h["secret"] for h in registered)]:
        assert secret not in text


def test_saving_again_keeps_the_abaha_token_unless_asked_to_rotate(stack: LocalStack) -> None:
    body = valid_body(stack, "resave")
    first = stack.admin("PUT", "/admin/connections/resave", json=body).json()
    again = stack.admin("PUT", "/admin/connections/resave", json=body).json()
    rotated = stack.admin("PUT", "/admin/connections/resave", json={**body, "rotate_abaha_token": True}).json()
    assert first["abaha_webhook"]["token"] == again["abaha_webhook"]["token"] != rotated["abaha_webhook"]["token"]
    assert stack.sandbox is not None
    assert len(stack.sandbox.kiotviet.retailers["resave"].webhooks) == WEBHOOK_TYPES  # old ones replaced


@pytest.mark.parametrize(
    "change, message",
    [({"client_secret": "wrong"}, "refused the Client ID / client secret"),
     ({"branch_id": 99}, "branch 99 does not exist in KiotViet; the shop's branches: 11 (Chi nhánh trung tâm)"),
     ({"surcharge_code": "NOPE"}, "'NOPE' is not a surcharge code in KiotViet"),
     ({"retailer": "Not A Shop"}, "retailer: must be the shop name"),
     ({"branch_id": "eleven"}, "branch_id: Not a valid integer."),
     ({"client_id": None}, "client_id: Field may not be null.")],
)  # fmt: skip
def test_validation_failures_answer_422_with_a_clear_message(
    stack: LocalStack, change: dict[str, Any], message: str
) -> None:
    body = {**valid_body(stack, "invalid"), **change}
    answer = stack.admin("PUT", "/admin/connections/invalid-shop", json=body)
    assert answer.status_code == 422
    assert any(message in error for error in answer.json()["errors"]), answer.json()
    assert stack.admin("GET", "/admin/connections/invalid-shop").status_code == 404


def test_missing_fields_are_each_named(stack: LocalStack) -> None:
    answer = stack.admin("PUT", "/admin/connections/empty", json={})
    assert answer.status_code == 422
    named = {error.split(":")[0] for error in answer.json()["errors"]}
    assert {"retailer", "client_id", "client_secret", "branch_id", "abaha_api_token"} <= named


def test_other_fees_disabled_in_kiotviet_is_reported(stack: LocalStack) -> None:
    body = valid_body(stack, "nofees")
    assert stack.sandbox is not None
    stack.sandbox.kiotviet.retailers["nofees"].surcharges_enabled = False
    answer = stack.admin("PUT", "/admin/connections/nofees", json=body)
    assert answer.status_code == 422
    assert "Chưa bật thu khác" in answer.json()["errors"][0]


def test_ordering_out_of_stock_disabled_is_a_warning(stack: LocalStack) -> None:
    body = valid_body(stack, "strict")
    assert stack.sandbox is not None
    stack.sandbox.kiotviet.retailers["strict"].settings["AllowOrderWhenOutStock"] = False
    answer = stack.admin("PUT", "/admin/connections/strict", json=body)
    assert answer.status_code == 200
    assert any("Cho phép đặt hàng khi hết tồn kho" in w for w in answer.json()["warnings"])


def test_admin_api_needs_the_token(stack: LocalStack) -> None:
    assert requests.get(f"{stack.url}/admin/connections", timeout=5).status_code == 401
    wrong = {"Authorization": "Bearer wrong"}
    assert requests.get(f"{stack.url}/admin/connections", headers=wrong, timeout=5).status_code == 401
    assert requests.get(f"{stack.url}/admin/rq/", timeout=5).status_code == 401
    dashboard = requests.get(f"{stack.url}/admin/rq/", auth=("ops", stack.env["ADMIN_TOKEN"]), timeout=5)
    assert dashboard.status_code == 200
    cross_site = requests.post(f"{stack.url}/admin/rq/queue/events/failed/empty", timeout=5,
                               auth=("ops", stack.env["ADMIN_TOKEN"]),
                               headers={"Origin": "https://evil.example"})  # fmt: skip
    assert cross_site.status_code == 403


def test_deleting_unregisters_webhooks_and_later_deliveries_are_quarantined(stack: LocalStack) -> None:
    shop = connect_shop(stack)
    secret = shop.webhook_secret("stock.update")
    assert stack.admin("DELETE", f"/admin/connections/{shop.shop_id}").json()["deleted"] is True
    assert shop.retailer.webhooks == {}
    body = json.dumps(sample("kiotviet/stock.update")).encode()
    before = stack.admin("GET", "/admin/quarantine").json()["unknown_shop"].get("unknown shop", 0)
    answer = requests.post(f"{stack.url}/webhooks/kiotviet/{shop.shop_id}", data=body,
                           headers={"X-Hub-Signature": sign(body, secret)}, timeout=5)  # fmt: skip
    assert (answer.status_code, answer.json()) == (200, {"status": "received"})  # as for any rejection
    assert stack.admin("GET", "/admin/quarantine").json()["unknown_shop"]["unknown shop"] == before + 1


def test_no_secret_reaches_a_log_line(stack: LocalStack) -> None:
    shop = connect_shop(stack)
    shop.kiotviet_change("products/3001", {"basePrice": 1000})
    wait_for(lambda: shop.abaha.products.get("3001"))
    requests.post(f"{stack.url}/webhooks/kiotviet/{shop.shop_id}", data=b"{}",
                  headers={"X-Hub-Signature": "forged"}, timeout=5)  # fmt: skip
    hook_secrets = [h["secret"] for h in shop.retailer.webhooks.values()]
    stack.admin("DELETE", f"/admin/connections/{shop.shop_id}")
    logs = log_text(stack)
    assert "connection.saved" in logs and "drain.done" in logs  # the logs were captured
    secrets = [shop.retailer.client_secret, shop.abaha_token, shop.saved["abaha_webhook"]["token"],
               stack.env["ADMIN_TOKEN"], stack.env["SECRET_KEY"], *hook_secrets]  # fmt: skip
    for secret in secrets:
        assert secret not in logs
    assert stack.sandbox is not None
    for token in stack.sandbox.kiotviet.tokens:
        assert token not in logs
