from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rq import Queue
from rq.serializers import JSONSerializer

from adapters.connections import Connection, ConnectionSecrets
from app import create_app
from config import Settings
from sandbox.stack import free_port
from tests.helpers import sample, sign
from wiring import Services, redis_client, services_on

SECRET = base64.b64encode(b"twenty-four random bytes").decode()
URL = "/webhooks/kiotviet/shop-42"
FORBIDDEN = {400, 401, 403, 404, 405}


@pytest.fixture(autouse=True)
def connected(services: Services) -> None:
    connection = Connection(shop_id="shop-42", retailer="demo", client_id="cid", branch_id=11)
    secrets = ConnectionSecrets("client-secret", "abaha-token", "abaha-webhook-token", (SECRET,))
    services.connections.save(connection, secrets)


def queued(services: Services) -> int:
    return Queue("events", connection=services.redis, serializer=JSONSerializer).count


def digest(body: bytes, key: bytes, algorithm: str = "sha256") -> bytes:
    return hmac.new(key, body, getattr(hashlib, algorithm)).digest()


BODY = json.dumps(sample("kiotviet/stock.update")).encode()
VARIANTS = {
    "hex": digest(BODY, SECRET.encode()).hex(),
    "hex upper case": digest(BODY, SECRET.encode()).hex().upper(),
    "sha256= hex": "sha256=" + digest(BODY, SECRET.encode()).hex(),
    "base64": base64.b64encode(digest(BODY, SECRET.encode())).decode(),
    "sha256= base64": "sha256=" + base64.b64encode(digest(BODY, SECRET.encode())).decode(),
    "key base64-decoded, hex": digest(BODY, base64.b64decode(SECRET)).hex(),
    "key base64-decoded, base64": base64.b64encode(digest(BODY, base64.b64decode(SECRET))).decode(),
    "sha1= hex": "sha1=" + digest(BODY, SECRET.encode(), "sha1").hex(),
    "sha1 hex without prefix": digest(BODY, SECRET.encode(), "sha1").hex(),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_signature_variant_is_accepted(client: FlaskClient, services: Services, variant: str) -> None:
    response = client.post(URL, data=BODY, headers={"X-Hub-Signature": VARIANTS[variant]})
    assert response.status_code == 200
    assert response.json["status"] == "accepted"
    assert queued(services) == 1


@pytest.mark.parametrize(
    "header, reason",
    [(sign(BODY, "another-secret"), "bad signature"), ("", "missing signature"),
     ("sha256=" + sign(BODY + b" ", SECRET), "bad signature"), ("sha256=zzzz", "bad signature")],
)  # fmt: skip
def test_a_bad_signature_is_answered_200_quarantined_and_enqueues_nothing(
    client: FlaskClient, services: Services, header: str, reason: str
) -> None:
    response = client.post(URL, data=BODY, headers={"X-Hub-Signature": header})
    assert response.status_code == 200
    assert response.json == {"status": "quarantined", "reason": reason}
    assert queued(services) == 0
    (kept,) = services.inbox.quarantined("shop-42")
    assert kept["reason"] == reason
    assert json.loads(kept["body"]) == json.loads(BODY)
    assert services.state.counts("shop-42")["quarantined"] == 1


def test_an_unknown_shop_is_answered_200_and_quarantined(client: FlaskClient, services: Services) -> None:
    response = client.post("/webhooks/kiotviet/nobody", data=BODY, headers={"X-Hub-Signature": sign(BODY, SECRET)})
    assert (response.status_code, response.json["reason"]) == (200, "unknown shop")
    assert queued(services) == 0
    assert services.inbox.quarantined("nobody")[0]["reason"] == "unknown shop"


def test_a_body_that_is_not_json_is_quarantined(client: FlaskClient, services: Services) -> None:
    body = b"<xml>not json</xml>"
    response = client.post(URL, data=body, headers={"X-Hub-Signature": sign(body, SECRET)})
    assert (response.status_code, response.json["reason"]) == (200, "unreadable body: not JSON")
    assert queued(services) == 0


def test_a_body_over_one_mebibyte_is_quarantined_not_read(client: FlaskClient, services: Services) -> None:
    body = b"{" + b" " * (1024 * 1024) + b"}"
    response = client.post(URL, data=body, headers={"X-Hub-Signature": sign(body, SECRET)})
    assert response.status_code == 200
    assert response.json["reason"].startswith("body too large")
    assert queued(services) == 0


def test_other_methods_get_200_never_405(client: FlaskClient) -> None:
    for method in ("get", "put", "patch", "delete", "options"):
        assert getattr(client, method)(URL).status_code == 200


def test_the_same_delivery_three_times_enqueues_one_job(client: FlaskClient, services: Services) -> None:
    for attempt in (1, 2, 3):
        body = json.dumps({**json.loads(BODY), "Attempt": attempt}).encode()
        response = client.post(URL, data=body, headers={"X-Hub-Signature": sign(body, SECRET)})
        assert response.json["status"] == "accepted"
    assert queued(services) == 1


def test_a_partly_unreadable_delivery_enqueues_the_readable_part_and_keeps_the_rest(
    client: FlaskClient, services: Services
) -> None:
    body_json = json.loads(BODY)
    body_json["Notifications"].append({"Action": "coupon.update.1", "Data": [{"Id": 1}]})
    body = json.dumps(body_json).encode()
    client.post(URL, data=body, headers={"X-Hub-Signature": sign(body, SECRET)})
    assert queued(services) == 1
    assert services.inbox.quarantined("shop-42")[0]["reason"].startswith("partly unreadable")


def test_quarantine_stays_bounded(client: FlaskClient, services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("adapters.inbox.QUARANTINE_LIMIT", 5)
    for _ in range(8):
        client.post(URL, data=BODY, headers={"X-Hub-Signature": "bad"})
    assert services.redis.llen("sync:quarantine") == 5


def test_redis_unreachable_answers_503_so_kiotviet_retries(settings: Settings) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    app: Flask = create_app(services=services_on(settings, redis_client(dead, answering_webhooks=True), dead))
    response = app.test_client().post(URL, data=BODY, headers={"X-Hub-Signature": sign(BODY, SECRET)})
    assert response.status_code == 503
    assert response.headers["Retry-After"]


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(
    body=st.one_of(st.binary(max_size=300), st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
        max_leaves=20).map(lambda v: json.dumps(v).encode())),
    header=st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=80),
    signed=st.booleans(),
)  # fmt: skip
def test_no_delivery_is_ever_answered_with_a_status_that_disables_the_webhook(
    client: FlaskClient, body: bytes, header: str, signed: bool
) -> None:
    headers = {"X-Hub-Signature": sign(body, SECRET) if signed else header}
    assert client.post(URL, data=body, headers=headers).status_code not in FORBIDDEN


def test_secrets_sealed_under_another_secret_key_quarantine_with_the_fix_named(
    settings: Settings, services: Services
) -> None:
    other = services_on(settings.with_overrides({"secret_key": "another-key"}), services.redis, "redis://fake")
    response = create_app(services=other).test_client().post(URL, data=BODY, headers={"X-Hub-Signature": "x"})
    assert response.status_code == 200
    assert "SECRET_KEY changed" in response.json["reason"]
