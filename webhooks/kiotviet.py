"""`POST /webhooks/kiotviet/<shop_id>`: verify, parse, normalize, claim, enqueue, answer.

KiotViet stops sending to an endpoint that answers 400, 401, 403, 404 or 405, so a delivery
this endpoint rejects is answered 200 and kept in the quarantine with its reason.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

import redis
import structlog
from flask import Blueprint, Response, jsonify, request

from schemas.events import iso_utc
from schemas.kiotviet_webhook import DeliveryRejected, normalize_delivery
from webhooks.body import read_limited_body
from wiring import Services, current_services

log = structlog.get_logger(__name__)
blueprint = Blueprint("kiotviet_webhooks", __name__)
SIGNATURE_HEADER = "X-Hub-Signature"
ANY_METHOD = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


class Rejected(Exception):
    """A delivery that is answered 200 and quarantined with this reason."""


@blueprint.route("/webhooks/kiotviet/<shop_id>", methods=ANY_METHOD)
def receive(shop_id: str) -> Response | tuple[Response, int]:
    """Accept one KiotViet delivery."""
    if request.method != "POST":
        return jsonify(status="ignored", reason="only POST delivers webhooks")
    services = current_services()
    try:
        return ingest(services, shop_id)
    except redis.exceptions.RedisError:
        log.exception("kiotviet.delivery_not_persisted", shop_id=shop_id)
        return unavailable()


def ingest(services: Services, shop_id: str) -> Response:
    """The steps of accepting a delivery; Redis errors propagate to become a 503."""
    raw = b""
    try:
        raw = read_body(services.settings.max_body_bytes)
        verify_signature(raw, request.headers.get(SIGNATURE_HEADER, ""), webhook_secrets(services, shop_id))
        normalized = normalize_delivery(raw, parse_json(raw), shop_id, iso_utc(datetime.now(UTC)))
    except (Rejected, DeliveryRejected) as exc:
        quarantine(services, shop_id, str(exc), raw)
        return jsonify(status="quarantined", reason=str(exc))
    accepted = services.inbox.accept(normalized.events)
    if normalized.problems:
        quarantine(services, shop_id, "partly unreadable: " + "; ".join(normalized.problems), raw)
    log.info("kiotviet.delivery_accepted", shop_id=shop_id, delivery_id=normalized.delivery_id,
             events=len(normalized.events), new=accepted)  # fmt: skip
    return jsonify(status="accepted", events=len(normalized.events), new=accepted)


def read_body(limit: int) -> bytes:
    """The raw body, refusing (by quarantine) anything larger than `limit`."""
    raw = read_limited_body(limit)
    if raw is None:
        raise Rejected(f"body too large: more than {limit} bytes")
    return raw


def webhook_secrets(services: Services, shop_id: str) -> Sequence[str]:
    """The secrets this shop's webhooks were registered with."""
    if services.connections.get(shop_id) is None:
        raise Rejected("unknown shop")
    secrets = services.connections.readable_secrets(shop_id)
    if secrets is None:
        raise Rejected("the shop's webhook secrets cannot be read (SECRET_KEY changed): save the connection again")
    return secrets.webhook_secrets


def verify_signature(raw: bytes, header: str, secrets: Sequence[str]) -> str:
    """Return the variant that matched; raise Rejected when none does."""
    if not header.strip():
        raise Rejected("missing signature")
    variant = matching_variant(raw, header, secrets)
    if variant is None:
        raise Rejected("bad signature")
    log.debug("kiotviet.signature_verified", variant=variant)
    return variant


def matching_variant(raw: bytes, header: str, secrets: Sequence[str]) -> str | None:
    """Which encoding of HMAC(raw) the header holds: hex or base64, sha256 or sha1, key as
    the secret's text or its Base64-decoded bytes (KiotViet documents none of these)."""
    value = header.strip()
    algorithms: tuple[str, ...] = ("sha256", "sha1")
    prefix, sep, rest = value.partition("=")
    if sep and prefix.lower() in algorithms:
        algorithms, value = (prefix.lower(),), rest
    given = value.encode("ascii", "replace")
    given_b64 = value.rstrip("=").replace("-", "+").replace("_", "/").encode("ascii", "replace")
    for key_name, key in _keys(secrets):
        for algorithm in algorithms:
            digest = hmac.new(key, raw, getattr(hashlib, algorithm)).digest()
            if hmac.compare_digest(given.lower(), digest.hex().encode()):
                return f"{algorithm}/hex/{key_name}"
            if hmac.compare_digest(given_b64, base64.b64encode(digest).rstrip(b"=")):
                return f"{algorithm}/base64/{key_name}"
    return None


def _keys(secrets: Sequence[str]) -> Iterator[tuple[str, bytes]]:
    for secret in secrets:
        yield "text", secret.encode("utf-8")
        try:
            yield "base64-decoded", base64.b64decode(secret, validate=True)
        except (binascii.Error, ValueError):
            continue


def parse_json(raw: bytes) -> object:
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise Rejected("unreadable body: not JSON") from exc


def quarantine(services: Services, shop_id: str, reason: str, raw: bytes) -> None:
    """Keep the delivery for operators; if even that fails, ask KiotViet to resend."""
    known = services.connections.get(shop_id) is not None
    details = {"delivery_attempt": request.headers.get("X-Attempt"), "remote": request.remote_addr}
    services.inbox.quarantine(shop_id, reason, raw, details, known_shop=known)
    log.warning("kiotviet.delivery_quarantined", shop_id=shop_id, reason=reason[:200])


def unavailable() -> tuple[Response, int]:
    response = jsonify(status="unavailable", reason="cannot persist the delivery now")
    response.headers["Retry-After"] = "30"
    return response, 503
