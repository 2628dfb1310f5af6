"""Fuzzing `POST /webhooks/abaha/<shop>`: whatever the body and headers, the answer is one of SPEC
§4.2's (202, 400, 401, 413, 503) with a message for every refusal, and a refused event leaves
Redis exactly as it was; an authenticated valid event is accepted.

200 cases by default; `./test.sh -m long tests/unit/test_abaha_webhook_fuzz.py` tries
10,000 and more.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.parse
from collections import Counter
from dataclasses import dataclass
from typing import Any

import fakeredis
import pytest
from flask.testing import FlaskClient
from hypothesis import strategies as st

from adapters import keys
from adapters.connections import Connection, ConnectionSecrets
from app import create_app
from config import Settings
from tests.conftest import SHOP
from tests.unit.webhook_fuzz_support import (
    fixture_bodies,
    hostile_bodies,
    other_headers,
    raw_body,
    run_fuzz,
    with_each_text_broken,
)
from tests.unit.webhook_fuzz_support import snapshot as redis_snapshot
from wiring import Services, services_on

DEFAULT_EXAMPLES = 200
LONG_EXAMPLES = 10_000
TOKEN = "the-shops-abaha-webhook-token"
SAMPLES = fixture_bodies("abaha")
ANSWERS = {202, 400, 401, 413, 503}
ONE_MEBIBYTE = 1024 * 1024


def signature(body: bytes, key: str = TOKEN) -> str:
    return "sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Event:
    """One generated POST and what its sender proved."""

    shop_id: str
    body: bytes
    headers: dict[str, str]
    authentic: bool  # the right token for this shop, and no signature or the right one
    valid: bool  # a sample event left intact, with a fresh id
    redis_down: bool


def freshened(body: Any, new_id: int) -> Any:
    """A sample event with a new event id and a new entity id, so it is news to the shop."""
    fresh = json.loads(json.dumps(body))
    fresh["id"] = f"evt_{new_id}"
    fresh["data"]["id"] = new_id
    return fresh


@st.composite
def events(draw: st.DrawFn) -> Event:
    valid = draw(st.booleans())
    if valid:
        name = draw(st.sampled_from(sorted(SAMPLES)))
        body = json.dumps(freshened(SAMPLES[name], draw(st.integers(1, 2**31)))).encode()
    else:
        body = draw(hostile_bodies(SAMPLES))
    if draw(st.sampled_from([False] * 29 + [True])):
        body = body + b" " * (ONE_MEBIBYTE + 1 - len(body))  # valid JSON still, one byte too many
    headers = draw(other_headers())
    token = draw(st.sampled_from(["right", "right", "wrong", "missing", "prefix", "case"]))
    headers |= {"right": {"X-Abaha-Token": TOKEN}, "wrong": {"X-Abaha-Token": "not-the-token"}, "missing": {},
                "prefix": {"X-Abaha-Token": TOKEN[:-1]}, "case": {"X-Abaha-Token": TOKEN.upper()}}[token]  # fmt: skip
    signed = draw(st.sampled_from(["absent", "absent", "right", "upper", "wrong", "text"]))
    if signed != "absent":
        headers["X-Abaha-Signature"] = {
            "right": signature(body), "upper": signature(body).upper(), "wrong": signature(body, "another key"),
            "text": draw(st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=80)),
        }[signed]  # fmt: skip
    stranger = draw(st.sampled_from([False] * 7 + [True]))
    shop_id = draw(st.text(st.characters(codec="utf-8", exclude_characters="/"), min_size=1, max_size=30)) \
        if stranger else SHOP  # fmt: skip
    authentic = token == "right" and signed in ("absent", "right", "upper") and shop_id == SHOP
    return Event(shop_id=shop_id, body=body, headers=headers, authentic=authentic, valid=valid,
                 redis_down=draw(st.sampled_from([False] * 9 + [True])))  # fmt: skip


def snapshot(redis: fakeredis.FakeRedis) -> dict[bytes, bytes | None]:
    """Every key and its value, but the deployment's count of deliveries (a metric, which counts
    refused ones too)."""
    return redis_snapshot(redis, ignored={keys.DELIVERIES.encode()})


class Endpoint:
    """The web app on fakeredis with one connected shop, reset before each case."""

    def __init__(self, settings: Settings) -> None:
        self.server = fakeredis.FakeServer()
        self.redis = fakeredis.FakeRedis(server=self.server)
        self.services: Services = services_on(settings, self.redis, "redis://fake")
        self.client: FlaskClient = create_app(services=self.services).test_client()
        self.seen: Counter[str] = Counter()

    def reset(self) -> None:
        self.server.connected = True
        self.redis.flushall()
        connection = Connection(shop_id=SHOP, retailer="demo", client_id="cid", branch_id=11)
        self.services.connections.save(connection, ConnectionSecrets("client", "abaha-api", TOKEN, {}))

    def check(self, event: Event) -> None:
        """Send the event and hold the endpoint to SPEC §4.2."""
        self.reset()
        before = snapshot(self.redis)
        self.server.connected = not event.redis_down
        path = "/webhooks/abaha/" + urllib.parse.quote(event.shop_id, safe="")
        response = self.client.post(path, headers=event.headers, **raw_body(event.body))
        self.server.connected = True
        answer = response.get_json(silent=True)
        self.seen[outcome(event, response.status_code)] += 1
        assert response.status_code in ANSWERS, (response.status_code, response.data[:300])
        assert isinstance(answer, dict), response.data[:300]
        if response.status_code != 202:
            assert answer["errors"] and all(isinstance(e, str) and e for e in answer["errors"]), answer
            assert snapshot(self.redis) == before, "a refused event changed Redis"
        if len(event.body) > ONE_MEBIBYTE and not event.redis_down:
            assert response.status_code == 413
        elif event.redis_down:
            assert response.status_code != 202
        elif not event.authentic:
            assert response.status_code == 401
        elif event.valid:
            assert response.status_code == 202, answer
            counts = self.services.state.counts(SHOP)
            assert self.services.pending.pending_count(SHOP) + counts["ignored"] >= 1, counts


def outcome(event: Event, status: int) -> str:
    if event.redis_down:
        return f"redis down {status}"
    return f"{'authentic' if event.authentic else 'unproven'} {'valid' if event.valid else 'bent'} {status}"


@pytest.fixture
def endpoint(settings: Settings) -> Endpoint:
    return Endpoint(settings)


def fuzz(endpoint: Endpoint, examples: int) -> None:
    expected = {"authentic valid 202", "authentic bent 400", "authentic bent 202", "unproven valid 401",
                "unproven bent 401"}  # fmt: skip
    run_fuzz(events(), endpoint.check, endpoint.seen, examples, expected, "events")


def test_fuzzed_events_get_a_clear_answer_and_a_refused_one_changes_nothing(endpoint: Endpoint) -> None:
    fuzz(endpoint, DEFAULT_EXAMPLES)


@pytest.mark.long
@pytest.mark.timeout(3600)  # 10,000 requests take several minutes on a shared machine
def test_ten_thousand_fuzzed_events_get_a_clear_answer_and_a_refused_one_changes_nothing(endpoint: Endpoint) -> None:
    fuzz(endpoint, LONG_EXAMPLES)


def test_half_an_emoji_in_any_text_of_any_sample_is_accepted(endpoint: Endpoint) -> None:
    """Every text of every sample in turn, so the case is tried whatever the fuzz draws."""
    for sample in SAMPLES.values():
        for number, broken in enumerate(with_each_text_broken(freshened(sample, 5000 + len(endpoint.seen)))):
            body = json.dumps(broken).encode()
            endpoint.check(Event(SHOP, body, {"X-Abaha-Token": TOKEN}, authentic=True, valid=False, redis_down=False))
            endpoint.seen[f"text {number}"] += 1
    assert sum(endpoint.seen.values()) > 40


def test_an_authentic_event_while_redis_is_down_is_a_503_and_changes_nothing(endpoint: Endpoint) -> None:
    body = json.dumps(freshened(SAMPLES["order.created"], 7)).encode()
    endpoint.check(Event(SHOP, body, {"X-Abaha-Token": TOKEN}, authentic=True, valid=True, redis_down=True))
    assert endpoint.seen == {"redis down 503": 1}


@pytest.mark.parametrize("where", ["data.id", "data.items.0.kv_product_id", "data.customer_kv_id"])
@pytest.mark.parametrize("value", [-5, 0, 2**63, 10**400])
def test_an_id_that_is_no_positive_64_bit_integer_is_refused_with_its_field_named(
    endpoint: Endpoint, where: str, value: int
) -> None:
    sample = "customer.created" if where == "data.customer_kv_id" else "order.created"
    event = freshened(SAMPLES[sample], 11)
    if where == "data.id":
        event["data"]["id"] = value
    elif where == "data.customer_kv_id":
        event["data"]["kv_id"] = value
    else:
        event["data"]["items"][0]["kv_product_id"] = value
    endpoint.reset()
    before = snapshot(endpoint.redis)
    answer = endpoint.client.post(f"/webhooks/abaha/{SHOP}", json=event, headers={"X-Abaha-Token": TOKEN})
    assert answer.status_code == 400
    assert ("kv_id" if where == "data.customer_kv_id" else where.rsplit(".", 1)[-1]) in answer.get_json()["errors"][0]
    assert snapshot(endpoint.redis) == before
