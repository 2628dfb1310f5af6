"""Fuzzing `POST /webhooks/kiotviet/<shop>`: whatever the body and headers, the answer is 200 (or
503 while Redis is down), never a status that makes KiotViet disable the webhook; a delivery whose
signature does not hold changes nothing but the shop's quarantine; a signed valid one is accepted.

200 cases by default; `./test.sh -m long tests/unit/test_kiotviet_webhook_fuzz.py` tries
10,000 and more.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import urllib.parse
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import fakeredis
import pytest
from flask.testing import FlaskClient
from hypothesis import strategies as st

from adapters import keys
from adapters.connections import Connection, ConnectionSecrets, HookSecret
from app import create_app
from config import Settings
from schemas.kiotviet_webhook import WEBHOOK_TYPES
from tests.conftest import SHOP
from tests.unit.webhook_fuzz_support import (
    fixture_bodies,
    hostile_bodies,
    other_headers,
    raw_body,
    run_fuzz,
    snapshot,
    with_each_text_broken,
)
from webhooks.signature import delivery_types
from wiring import Services, services_on

DEFAULT_EXAMPLES = 200
LONG_EXAMPLES = 10_000
SECRETS = {kind: base64.b64encode(f"secret of {kind}".encode()).decode() for kind in WEBHOOK_TYPES}
NOT_A_SECRET = base64.b64encode(b"nobody's secret").decode()
SAMPLES = fixture_bodies("kiotviet")
VALID = {name: body for name, body in SAMPLES.items() if not name.startswith("rest.")}  # REST answers, not webhooks
FORBIDDEN = {400, 401, 403, 404, 405}
REJECTED = {"status": "received"}
# what an unsigned delivery may write: the shop's quarantine, its count of quarantined deliveries,
# the deployment's counts by reason and of deliveries (metrics)
QUARANTINE_KEYS = (keys.shop_key(SHOP, keys.QUARANTINE), keys.QUARANTINE_REASONS, keys.UNKNOWN_SHOP_DELIVERIES,
                   keys.DELIVERIES)  # fmt: skip


def hmac_digest(key: bytes, body: bytes, algorithm: str) -> bytes:
    return hmac.new(key, body, getattr(hashlib, algorithm)).digest()


RIGHT_FORMS: dict[str, Callable[[bytes, str], str]] = {
    "sha1= on SHA-256 hex (live KiotViet)": lambda b, s: "sha1=" + hmac_digest(s.encode(), b, "sha256").hex(),
    "bare SHA-256 hex": lambda b, s: hmac_digest(s.encode(), b, "sha256").hex(),
    "upper-case hex": lambda b, s: hmac_digest(s.encode(), b, "sha256").hex().upper(),
    "sha256= hex": lambda b, s: "sha256=" + hmac_digest(s.encode(), b, "sha256").hex(),
    "base64": lambda b, s: base64.b64encode(hmac_digest(s.encode(), b, "sha256")).decode(),
    "key decoded, hex": lambda b, s: hmac_digest(base64.b64decode(s), b, "sha256").hex(),
    "sha1= on SHA-1 hex": lambda b, s: "sha1=" + hmac_digest(s.encode(), b, "sha1").hex(),
    "padded with spaces": lambda b, s: "  sha1=" + hmac_digest(s.encode(), b, "sha256").hex() + " ",
}
WRONG_FORMS: dict[str, Callable[[bytes, str], str]] = {
    "signed with no shop secret": lambda b, s: "sha1=" + hmac_digest(NOT_A_SECRET.encode(), b, "sha256").hex(),
    "signed over another body": lambda b, s: "sha1=" + hmac_digest(s.encode(), b + b" ", "sha256").hex(),
    "one digit changed": lambda b, s: _flip("sha1=" + hmac_digest(s.encode(), b, "sha256").hex()),
    "truncated digest": lambda b, s: "sha1=" + hmac_digest(s.encode(), b, "sha256").hex()[:40],
    "label only": lambda b, s: "sha1=",
    "blank": lambda b, s: "   ",
}


def _flip(signature: str) -> str:
    last = signature[-1]
    return signature[:-1] + ("0" if last != "0" else "1")


@dataclass(frozen=True)
class Delivery:
    """One generated POST: where it goes, its bytes, headers, and what its signature is."""

    shop_id: str
    body: bytes
    headers: dict[str, str]
    signed: bool  # the signature holds for this shop
    valid: bool  # a sample body left intact, with fresh ids
    redis_down: bool


def freshened(body: Any, first_id: int) -> Any:
    """A sample with a new delivery id and new entity ids, so each case is news to the shop."""
    fresh = json.loads(json.dumps(body))
    fresh["Id"] = f"fuzz-{first_id}"
    items = [item for n in fresh.get("Notifications", []) for item in n.get("Data") or [] if isinstance(item, dict)]
    for number, item in enumerate(items):
        for key in ("Id", "ProductId"):
            if isinstance(item.get(key), int):
                item[key] = first_id + number
    return fresh


@st.composite
def deliveries(draw: st.DrawFn) -> Delivery:
    """A delivery of any shape, to the shop or to a stranger's shop id."""
    valid = draw(st.booleans())
    if valid:
        name = draw(st.sampled_from(sorted(VALID)))
        body = json.dumps(freshened(VALID[name], draw(st.integers(1, 2**31)))).encode()
    else:
        body = draw(hostile_bodies(SAMPLES))
    signature_kind = draw(st.sampled_from(["right", "right", "wrong", "text", "missing"]))
    # the body's own type's secret when it names one; any secret of the shop otherwise
    secret = SECRETS[draw(st.sampled_from(sorted(delivery_types(body) or WEBHOOK_TYPES)))]
    headers = draw(other_headers())
    if signature_kind == "right":
        headers["X-Hub-Signature"] = RIGHT_FORMS[draw(st.sampled_from(sorted(RIGHT_FORMS)))](body, secret)
    elif signature_kind == "wrong":
        headers["X-Hub-Signature"] = WRONG_FORMS[draw(st.sampled_from(sorted(WRONG_FORMS)))](body, secret)
    elif signature_kind == "text":
        headers["X-Hub-Signature"] = draw(st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=90))
    stranger = draw(st.sampled_from([False] * 7 + [True]))
    shop_id = draw(st.text(st.characters(codec="utf-8", exclude_characters="/"), min_size=1, max_size=30)) \
        if stranger else SHOP  # fmt: skip
    return Delivery(shop_id=shop_id, body=body, headers=headers, signed=signature_kind == "right" and not stranger,
                    valid=valid, redis_down=draw(st.sampled_from([False] * 9 + [True])))  # fmt: skip


def outside_quarantine(before: dict[bytes, bytes | None], after: dict[bytes, bytes | None]) -> set[str]:
    """Keys written by the request that are not the quarantine's."""
    changed = {k.decode() for k in set(before) | set(after) if before.get(k) != after.get(k)}
    return {k for k in changed if not k.startswith(QUARANTINE_KEYS) and k != keys.shop_key(SHOP, keys.STATS)}


class Endpoint:
    """The web app on fakeredis with one connected shop, reset before each case."""

    def __init__(self, settings: Settings) -> None:
        self.server = fakeredis.FakeServer()
        self.redis = fakeredis.FakeRedis(server=self.server)
        self.services: Services = services_on(settings, self.redis, "redis://fake")
        self.client: FlaskClient = create_app(services=self.services).test_client()
        self.seen: Counter[str] = Counter()  # which kinds of case were tried, to show the mix is wide

    def reset(self) -> None:
        self.server.connected = True
        self.redis.flushall()
        connection = Connection(shop_id=SHOP, retailer="demo", client_id="cid", branch_id=11)
        hooks: dict[str, tuple[HookSecret, ...]] = {kind: (HookSecret(secret),) for kind, secret in SECRETS.items()}
        self.services.connections.save(connection, ConnectionSecrets("client", "abaha", "abaha-hook", hooks))

    def check(self, delivery: Delivery) -> None:
        """Send the delivery and hold the endpoint to its promises."""
        self.reset()
        before = snapshot(self.redis)
        self.server.connected = not delivery.redis_down
        path = "/webhooks/kiotviet/" + urllib.parse.quote(delivery.shop_id, safe="")
        response = self.client.post(path, headers=delivery.headers, **raw_body(delivery.body))
        self.server.connected = True
        assert response.status_code not in FORBIDDEN, response.status_code
        self.seen[outcome(delivery, response.get_json(silent=True))] += 1
        if delivery.redis_down:
            assert (response.status_code, response.headers.get("Retry-After")) == (503, "30")
            assert snapshot(self.redis) == before
            return
        assert response.status_code == 200, response.data[:300]
        answer = response.get_json()
        if not delivery.signed:
            assert answer == REJECTED
            assert outside_quarantine(before, snapshot(self.redis)) == set()
            assert self.services.pending.pending_count(SHOP) == 0
        elif delivery.valid:
            assert answer["status"] == "accepted" and answer["events"] >= 1, answer
            # each event waits to be applied, or is of a type recorded and not mirrored
            counts = self.services.state.counts(SHOP)
            assert self.services.pending.pending_count(SHOP) + counts["ignored"] >= 1, counts
            assert self.services.quarantine.count(SHOP) == 0
        else:  # signed but bent: applied in part, or kept as KiotViet's own unreadable delivery
            assert answer == REJECTED or answer["status"] == "accepted", answer
            if answer == REJECTED:
                assert all(entry.signed for entry in self.services.quarantine.entries(SHOP))


def outcome(delivery: Delivery, answer: Any) -> str:
    if delivery.redis_down:
        return "redis down"
    status = (answer or {}).get("status")
    who = "stranger" if delivery.shop_id != SHOP else "signed" if delivery.signed else "unsigned"
    return f"{who} {'valid' if delivery.valid else 'bent'} {status}"


@pytest.fixture
def endpoint(settings: Settings) -> Endpoint:
    return Endpoint(settings)


def fuzz(endpoint: Endpoint, examples: int) -> None:
    expected = {"signed valid accepted", "signed bent accepted", "signed bent received", "unsigned valid received",
                "unsigned bent received"}  # fmt: skip
    run_fuzz(deliveries(), endpoint.check, endpoint.seen, examples, expected, "deliveries")


def test_fuzzed_deliveries_never_disable_the_webhook_nor_let_an_unsigned_body_in(endpoint: Endpoint) -> None:
    fuzz(endpoint, DEFAULT_EXAMPLES)


@pytest.mark.long
@pytest.mark.timeout(3600)  # 10,000 requests take several minutes on a shared machine
def test_ten_thousand_fuzzed_deliveries_never_disable_the_webhook_nor_let_an_unsigned_body_in(
    endpoint: Endpoint,
) -> None:
    fuzz(endpoint, LONG_EXAMPLES)


@pytest.mark.parametrize("name", sorted(VALID))
def test_every_sample_signed_as_live_kiotviet_does_is_accepted(endpoint: Endpoint, name: str) -> None:
    body = json.dumps(freshened(VALID[name], 1000 + sorted(VALID).index(name))).encode()
    secret = SECRETS[sorted(delivery_types(body))[0]]
    delivery = Delivery(SHOP, body, {"X-Hub-Signature": RIGHT_FORMS["sha1= on SHA-256 hex (live KiotViet)"](body,
                        secret)}, signed=True, valid=True, redis_down=False)  # fmt: skip
    endpoint.check(delivery)


def test_half_an_emoji_in_any_text_of_any_signed_sample_is_accepted_or_kept(endpoint: Endpoint) -> None:
    """Every text of every sample in turn, so the case is tried whatever the fuzz draws."""
    for name, sample in sorted(VALID.items()):
        for number, broken in enumerate(with_each_text_broken(freshened(sample, 5000))):
            body = json.dumps(broken).encode()
            secret = SECRETS[sorted(delivery_types(body) or WEBHOOK_TYPES)[0]]
            signature = RIGHT_FORMS["sha1= on SHA-256 hex (live KiotViet)"](body, secret)
            endpoint.check(Delivery(SHOP, body, {"X-Hub-Signature": signature}, signed=True, valid=False,
                                    redis_down=False))  # fmt: skip
            endpoint.seen[f"{name} text {number}"] += 1
    assert len(endpoint.seen) > 100


def test_a_signed_delivery_while_redis_is_down_is_a_503_and_changes_nothing(endpoint: Endpoint) -> None:
    body = json.dumps(freshened(VALID["stock.update"], 9)).encode()
    signature = RIGHT_FORMS["sha1= on SHA-256 hex (live KiotViet)"](body, SECRETS["stock.update"])
    endpoint.check(Delivery(SHOP, body, {"X-Hub-Signature": signature}, signed=True, valid=True, redis_down=True))
    assert endpoint.seen == {"redis down": 1}


def test_the_fuzz_oracle_sees_an_unsigned_delivery_that_got_in(
    endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checks above can fail: with verification skipped, an unsigned body is caught."""
    monkeypatch.setattr("webhooks.deliveries.verify", lambda *_: "skipped")
    body = json.dumps(freshened(VALID["stock.update"], 1)).encode()
    with pytest.raises(AssertionError):
        endpoint.check(Delivery(SHOP, body, {"X-Hub-Signature": "wrong"}, signed=False, valid=True, redis_down=False))
