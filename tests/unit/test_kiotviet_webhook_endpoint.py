"""`POST /webhooks/kiotviet/<shop>`: signatures as real deliveries carry them, a quarantine that
strangers cannot flush, one answer for every rejection, and nothing a body does makes a 400-405."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters import keys
from adapters.connections import RETIRED_SECRET_GRACE_SECONDS, Connection, ConnectionSecrets, HookSecret
from admin.quarantine import admit
from app import create_app
from config import Settings
from sandbox.stack import free_port
from schemas.kiotviet_webhook import WEBHOOK_TYPES
from tests.conftest import SHOP
from tests.helpers import sample, sign
from wiring import Services, redis_client, services_on

SECRET = base64.b64encode(b"twenty-four random bytes").decode()
OTHER_TYPES_SECRET = base64.b64encode(b"the secret of another type").decode()
URL = f"/webhooks/kiotviet/{SHOP}"
FORBIDDEN = {400, 401, 403, 404, 405}
REJECTED = {"status": "received"}


def secrets_by_type(stock_secrets: tuple[HookSecret, ...]) -> dict[str, tuple[HookSecret, ...]]:
    hooks = {kind: (HookSecret(OTHER_TYPES_SECRET),) for kind in WEBHOOK_TYPES}
    return {**hooks, "stock.update": stock_secrets}


@pytest.fixture(autouse=True)
def connected(services: Services) -> None:
    connection = Connection(shop_id=SHOP, retailer="demo", client_id="cid", branch_id=11)
    stored = ConnectionSecrets("client-secret", "abaha-token", "abaha-webhook-token",
                               secrets_by_type((HookSecret(SECRET),)))  # fmt: skip
    services.connections.save(connection, stored)


def pending(services: Services) -> int:
    return services.pending.pending_count(SHOP)


def digest(body: bytes, key: bytes, algorithm: str = "sha256") -> bytes:
    return hmac.new(key, body, getattr(hashlib, algorithm)).digest()


BODY = json.dumps(sample("kiotviet/stock.update")).encode()
VARIANTS = {
    "sha1= label on a SHA-256 hex digest (what live KiotViet sends)": "sha1=" + digest(BODY, SECRET.encode()).hex(),
    "hex": digest(BODY, SECRET.encode()).hex(),
    "hex upper case": digest(BODY, SECRET.encode()).hex().upper(),
    "sha256= hex": "sha256=" + digest(BODY, SECRET.encode()).hex(),
    "base64": base64.b64encode(digest(BODY, SECRET.encode())).decode(),
    "sha256= base64": "sha256=" + base64.b64encode(digest(BODY, SECRET.encode())).decode(),
    "key base64-decoded, hex": digest(BODY, base64.b64decode(SECRET)).hex(),
    "key base64-decoded, base64": base64.b64encode(digest(BODY, base64.b64decode(SECRET))).decode(),
    "sha1= hex of SHA-1": "sha1=" + digest(BODY, SECRET.encode(), "sha1").hex(),
    "SHA-1 hex without a label": digest(BODY, SECRET.encode(), "sha1").hex(),
    "sha256= label on a SHA-1 digest": "sha256=" + digest(BODY, SECRET.encode(), "sha1").hex(),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_signature_variant_is_accepted(client: FlaskClient, services: Services, variant: str) -> None:
    response = client.post(URL, data=BODY, headers={"X-Hub-Signature": VARIANTS[variant]})
    assert response.status_code == 200
    assert response.json is not None and response.json["status"] == "accepted"
    assert pending(services) == 1


def test_a_delivery_is_checked_against_its_own_types_secret_only(client: FlaskClient, services: Services) -> None:
    signed_with_another_types_secret = sign(BODY, OTHER_TYPES_SECRET)
    response = client.post(URL, data=BODY, headers={"X-Hub-Signature": signed_with_another_types_secret})
    assert response.json == REJECTED
    assert pending(services) == 0


def test_a_replaced_secret_verifies_during_its_grace_and_not_after(client: FlaskClient, services: Services) -> None:
    now = time.time()
    connection = services.connections.get(SHOP)
    assert connection is not None
    for retired_at, accepted in ((now - 60, True), (now - RETIRED_SECRET_GRACE_SECONDS - 60, False)):
        stored = ConnectionSecrets(
            "client-secret",
            "abaha-token",
            "abaha-webhook-token",
            secrets_by_type((HookSecret("the-new-secret"), HookSecret(SECRET, retired_at))),
        )
        services.connections.save(connection, stored)
        body = json.dumps({**json.loads(BODY), "Id": f"d-{accepted}"}).encode()
        client.application.extensions["sync"].shops._cache.clear()
        answer = client.post(URL, data=body, headers={"X-Hub-Signature": sign(body, SECRET)})
        assert (answer.json or {}).get("status") == ("accepted" if accepted else "received")


def test_checking_a_bad_signature_costs_a_few_hmacs_however_often_the_shop_was_saved(
    services: Services, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    connection = services.connections.get(SHOP)
    assert connection is not None
    stored = ConnectionSecrets("client-secret", "abaha-token", "abaha-webhook-token", {})
    for save in range(30):  # a shop saved 30 times
        stored = ConnectionSecrets(stored.client_secret, stored.abaha_api_token, stored.abaha_webhook_token,
                                   stored.with_new_secrets({k: f"secret-{save}-{k}" for k in WEBHOOK_TYPES},
                                                           time.time()))  # fmt: skip
    services.connections.save(connection, stored)
    made: list[hmac.HMAC] = []
    real = hmac.new

    def counted(*args: Any, **kwargs: Any) -> hmac.HMAC:
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr("webhooks.signature.hmac.new", counted)
    client.post(URL, data=BODY, headers={"X-Hub-Signature": "sha1=" + "0" * 64})
    # the stock.update type's current secret and the one it replaced, each as its text and as
    # its Base64 decoding: at most 4 HMACs, where checking every secret ever given would be 1,800
    assert 0 < len(made) <= 4


@pytest.mark.parametrize(
    "header, reason",
    [(sign(BODY, "another-secret"), "bad signature"), ("", "missing signature"),
     ("sha256=" + sign(BODY + b" ", SECRET), "bad signature"), ("sha256=zzzz", "bad signature")],
)  # fmt: skip
def test_a_bad_signature_is_answered_200_kept_in_the_shops_quarantine_and_changes_nothing(
    client: FlaskClient, services: Services, header: str, reason: str
) -> None:
    response = client.post(URL, data=BODY, headers={"X-Hub-Signature": header})
    assert (response.status_code, response.json) == (200, REJECTED)
    assert pending(services) == 0
    (kept,) = services.quarantine.entries(SHOP)
    assert (kept.reason, kept.signed) == (reason, False)
    assert json.loads(services.quarantine.body(SHOP, kept) or b"") == json.loads(BODY)
    assert services.state.counts(SHOP)["quarantined"] == 1


def test_an_unknown_shop_gets_the_same_answer_and_is_counted_never_stored(
    client: FlaskClient, services: Services
) -> None:
    unknown = client.post("/webhooks/kiotviet/nobody", data=BODY, headers={"X-Hub-Signature": sign(BODY, SECRET)})
    bad = client.post(URL, data=BODY, headers={"X-Hub-Signature": "bad"})
    assert unknown.json == bad.json == REJECTED
    assert unknown.data == bad.data
    assert services.quarantine.unknown_shop_counts() == {"unknown shop": 1}
    assert not [k for k in services.redis.scan_iter(match="*nobody*")]


def test_a_flood_to_made_up_shops_cannot_erase_a_real_shops_evidence(client: FlaskClient, services: Services) -> None:
    body = b"{not json"
    client.post(URL, data=body, headers={"X-Hub-Signature": sign(body, SECRET)})  # KiotViet's own, unreadable
    for n in range(1200):
        client.post(f"/webhooks/kiotviet/stranger-{n}", data=b"{}", headers={"X-Hub-Signature": "x"})
    for _ in range(300):  # and unsigned posts to the real shop's URL
        client.post(URL, data=b"{}", headers={"X-Hub-Signature": "x"})
    signed = [e for e in services.quarantine.entries(SHOP, limit=1000) if e.signed]
    assert [e.reason for e in signed] == ["unreadable body: not JSON"]
    assert services.quarantine.count(SHOP) <= 1 + 200


def test_a_body_that_is_not_json_is_kept_as_signed_and_unreadable(client: FlaskClient, services: Services) -> None:
    body = b"<xml>not json</xml>"
    response = client.post(URL, data=body, headers={"X-Hub-Signature": sign(body, SECRET)})
    assert (response.status_code, response.json) == (200, REJECTED)
    assert services.quarantine.entries(SHOP)[0].reason == "unreadable body: not JSON"
    assert pending(services) == 0


@pytest.mark.parametrize("depth", [40, 500, 5000])
def test_a_deeply_nested_body_is_quarantined_not_a_500(client: FlaskClient, services: Services, depth: int) -> None:
    body = ('{"Notifications": ' + "[" * depth + "]" * depth + "}").encode()
    response = client.post(URL, data=body, headers={"X-Hub-Signature": sign(body, SECRET)})
    assert (response.status_code, response.json) == (200, REJECTED)
    assert services.quarantine.entries(SHOP)[0].reason.startswith("unreadable body")


def test_a_body_over_one_mebibyte_is_quarantined_not_read(client: FlaskClient, services: Services) -> None:
    body = b"{" + b" " * (1024 * 1024) + b"}"
    response = client.post(URL, data=body, headers={"X-Hub-Signature": sign(body, SECRET)})
    assert (response.status_code, response.json) == (200, REJECTED)
    assert services.quarantine.entries(SHOP)[0].reason.startswith("body too large")
    assert pending(services) == 0


def test_other_methods_get_200_never_405(client: FlaskClient) -> None:
    for method in ("get", "put", "patch", "delete", "options"):
        assert getattr(client, method)(URL).status_code == 200


def test_the_same_delivery_three_times_is_pending_once(client: FlaskClient, services: Services) -> None:
    for attempt in (1, 2, 3):
        body = json.dumps({**json.loads(BODY), "Attempt": attempt}).encode()
        response = client.post(URL, data=body, headers={"X-Hub-Signature": sign(body, SECRET)})
        assert response.json is not None and response.json["status"] == "accepted"
    assert pending(services) == 1
    assert services.state.counts(SHOP)["duplicate"] == 2


def test_a_16000_item_delivery_is_accepted_whole_in_bounded_redis_steps(
    client: FlaskClient, services: Services
) -> None:
    items = [{"ProductId": 100_000 + n, "BranchId": 11, "OnHand": n % 50} for n in range(16_000)]
    envelope = {"Id": "big", "Notifications": [{"Action": "stock.update.1", "Data": items}]}
    body = json.dumps(envelope, separators=(",", ":")).encode()
    assert len(body) < 1024 * 1024
    response = client.post(URL, data=body, headers={"X-Hub-Signature": sign(body, SECRET)})
    assert response.json is not None and response.json["new"] == 16_000
    assert pending(services) == 16_000


def test_a_partly_unreadable_delivery_accepts_the_readable_part_and_keeps_the_rest(
    client: FlaskClient, services: Services
) -> None:
    body_json = json.loads(BODY)
    body_json["Notifications"].append({"Action": "coupon.update.1", "Data": [{"Id": 1}]})
    body = json.dumps(body_json).encode()
    client.post(URL, data=body, headers={"X-Hub-Signature": sign(body, SECRET)})
    assert pending(services) == 1
    (kept,) = services.quarantine.entries(SHOP)
    assert kept.reason.startswith("partly unreadable") and kept.signed


def test_quarantine_stays_bounded_per_shop(
    client: FlaskClient, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("adapters.quarantine.KEPT_PER_LIST", 5)
    for _ in range(8):
        client.post(URL, data=BODY, headers={"X-Hub-Signature": "bad"})
    assert services.quarantine.count(SHOP) == 5
    assert services.redis.hlen(keys.shop_key(SHOP, keys.QUARANTINE, "unsigned", "bodies")) == 5


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
    assert (response.status_code, response.json) == (200, REJECTED)
    assert "SECRET_KEY changed" in other.quarantine.entries(SHOP)[0].reason


def test_a_delivery_quarantined_while_secrets_could_not_be_read_is_admitted_once_they_can(
    settings: Settings, services: Services
) -> None:
    other = services_on(settings.with_overrides({"secret_key": "a mistaken key"}), services.redis, "redis://fake")
    create_app(services=other).test_client().post(URL, data=BODY, headers={"X-Hub-Signature": sign(BODY, SECRET)})
    assert pending(services) == 0
    (kept,) = services.quarantine.entries(SHOP)
    result = admit(services, SHOP)  # the deployment's SECRET_KEY is right again
    assert (result.admitted, result.still_rejected) == ([kept.id], [])
    assert pending(services) == 1
    assert services.quarantine.entries(SHOP) == []
