"""`POST /webhooks/abaha/<shop_id>`: Abaha's order and customer events.

202 accepted (also a duplicate or a type the service ignores), 401 bad credentials, 400
malformed, 413 too large, 503 when the event cannot be stored.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
from datetime import UTC, datetime

import redis
import structlog
from flask import Blueprint, Response, jsonify, request

from adapters.state import DELIVERY_REJECTED, Delivery
from schemas.abaha import AbahaEventInvalid, normalize_event
from schemas.events import Outcome, iso_utc
from webhooks import body
from webhooks.body import read_limited_body
from wiring import Services, current_services

log = structlog.get_logger(__name__)
blueprint = Blueprint("abaha_webhooks", __name__)
TOKEN_HEADER = "X-Abaha-Token"
SIGNATURE_HEADER = "X-Abaha-Signature"
SOURCE = "abaha"
OTHER_TYPE = "other"  # an event type the service does not handle (a stranger could make up any)


class Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@blueprint.post("/webhooks/abaha/<shop_id>")
def receive(shop_id: str) -> tuple[Response, int]:
    """Accept one Abaha event."""
    services = current_services()
    try:
        return ingest(services, shop_id)
    except Refused as exc:
        log.warning("abaha.event_refused", shop_id=shop_id, status=exc.status, reason=str(exc)[:200])
        with contextlib.suppress(redis.exceptions.RedisError):  # the answer matters more than the count
            services.state.count_delivery(SOURCE, [], DELIVERY_REJECTED)
        return jsonify(errors=[str(exc)]), exc.status
    except redis.exceptions.RedisError as exc:  # one line per refused delivery, no traceback
        log.warning("abaha.event_not_persisted", shop_id=shop_id, error=type(exc).__name__)
        response = jsonify(errors=["cannot store the event now; send it again"])
        response.headers["Retry-After"] = "30"
        return response, 503


def ingest(services: Services, shop_id: str) -> tuple[Response, int]:
    raw = read_body(services.settings.max_body_bytes)
    authenticate(services, shop_id, raw)
    try:
        event = normalize_event(parse_json(raw), shop_id, iso_utc(datetime.now(UTC)))
    except AbahaEventInvalid as exc:
        raise Refused(400, str(exc)) from exc
    if event is None:
        log.info("abaha.event_ignored", shop_id=shop_id)
        services.state.count(shop_id, Outcome.IGNORED, kind=OTHER_TYPE)
        services.state.count_delivery(SOURCE, [OTHER_TYPE])
        return jsonify(status="ignored"), 202
    accepted = services.inbox.accept(shop_id, [event], delivery=Delivery(SOURCE, frozenset([event.type]), 1))
    log.info("abaha.event_accepted", shop_id=shop_id, event_type=event.type, entity_id=event.entity_id,
             event_id=event.id, new=accepted.new, duplicate=accepted.duplicate)  # fmt: skip
    return jsonify(status="accepted", new=accepted.new), 202


def read_body(limit: int) -> bytes:
    raw = read_limited_body(limit)
    if raw is None:
        raise Refused(413, f"body larger than {limit} bytes")
    return raw


def authenticate(services: Services, shop_id: str, raw: bytes) -> None:
    """The shop's token in constant time, and the HMAC when Abaha sends one."""
    shop = services.shops.lookup(shop_id)
    secrets = shop.secrets if shop else None
    given = request.headers.get(TOKEN_HEADER, "").encode()
    # compare even for an unknown shop, so timing does not tell which shops exist
    expected = (secrets.abaha_webhook_token if secrets else "unknown-shop-placeholder").encode()
    if not (hmac.compare_digest(given, expected) and secrets is not None):
        raise Refused(401, f"missing or wrong {TOKEN_HEADER}")
    signature = request.headers.get(SIGNATURE_HEADER)
    if signature is not None:
        digest = hmac.new(expected, raw, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(signature.strip().lower().encode(), f"sha256={digest}".encode()):
            raise Refused(401, f"{SIGNATURE_HEADER} does not match the body")


def parse_json(raw: bytes) -> object:
    try:
        return body.parse_json(raw)
    except body.UnreadableBody as exc:
        raise Refused(400, f"body is {exc}" if str(exc) == "not JSON" else f"body {exc}") from exc
