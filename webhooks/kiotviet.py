"""`POST /webhooks/kiotviet/<shop_id>`: verify, parse, normalize, accept, answer.

KiotViet stops sending to an endpoint that answers 400, 401, 403, 404 or 405, so a delivery this
endpoint rejects is answered 200, with one body for every rejection (a stranger cannot tell an
unknown shop from a bad signature), and kept in the shop's quarantine with its reason.
"""

from __future__ import annotations

import redis
import structlog
from flask import Blueprint, Response, jsonify, request

from adapters.state import DELIVERY_REJECTED, Delivery
from schemas.kiotviet_webhook import WEBHOOK_TYPES
from webhooks.body import read_limited_body
from webhooks.deliveries import Rejected, check_delivery
from webhooks.signature import delivery_types
from wiring import Services, current_services

log = structlog.get_logger(__name__)
blueprint = Blueprint("kiotviet_webhooks", __name__)
SIGNATURE_HEADER = "X-Hub-Signature"
ANY_METHOD = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
REJECTED = {"status": "received"}
SOURCE = "kiotviet"
LOGGED_EVENT_IDS = 50  # a delivery's first event ids in its log line, to follow each to its write


@blueprint.route("/webhooks/kiotviet/<shop_id>", methods=ANY_METHOD)
def receive(shop_id: str) -> Response | tuple[Response, int]:
    """Accept one KiotViet delivery."""
    if request.method != "POST":
        return jsonify(REJECTED)
    services = current_services()
    try:
        return ingest(services, shop_id)
    except redis.exceptions.RedisError as exc:  # one line per refused delivery, no traceback
        log.warning("kiotviet.delivery_not_persisted", shop_id=shop_id, error=type(exc).__name__)
        return unavailable()


def ingest(services: Services, shop_id: str) -> Response:
    """The steps of accepting a delivery; Redis errors propagate to become a 503."""
    raw = read_limited_body(services.settings.max_body_bytes)
    shop = services.shops.lookup(shop_id)
    if shop is None:
        services.quarantine.count_unknown_shop("unknown shop")
        services.state.count_delivery(SOURCE, delivery_types(raw or b""), DELIVERY_REJECTED)
        log.info("kiotviet.delivery_for_unknown_shop")  # the id is a stranger's to choose: not logged
        return jsonify(REJECTED)
    try:
        if raw is None:
            raise Rejected(f"body too large: more than {services.settings.max_body_bytes} bytes")
        normalized, variant = check_delivery(services, shop_id, raw, request.headers.get(SIGNATURE_HEADER, ""))
    except Rejected as exc:
        keep(services, shop_id, str(exc), raw or b"", signed=exc.signed)
        services.state.count_delivery(SOURCE, delivery_types(raw or b""), DELIVERY_REJECTED)
        return jsonify(REJECTED)
    types = frozenset(e.type for e in normalized.events).intersection(WEBHOOK_TYPES)
    delivery = Delivery(SOURCE, types, len(normalized.events))
    accepted = services.inbox.accept(shop_id, normalized.events, branch_id=shop.connection.branch_id, delivery=delivery)
    if normalized.problems:
        keep(services, shop_id, "partly unreadable: " + "; ".join(normalized.problems), raw, signed=True)
    log.info("kiotviet.delivery_accepted", shop_id=shop_id, delivery_id=normalized.delivery_id, verified_as=variant,
             events=len(normalized.events), new=accepted.new, coalesced=accepted.coalesced,
             stale=accepted.stale, duplicate=accepted.duplicate,
             event_ids=[e.id for e in normalized.events[:LOGGED_EVENT_IDS]])  # fmt: skip
    return jsonify(status="accepted", events=len(normalized.events), new=accepted.new)


def keep(services: Services, shop_id: str, reason: str, raw: bytes, *, signed: bool) -> None:
    """Keep the delivery for operators; if even that fails, ask KiotViet to resend."""
    details = {"attempt": request.headers.get("X-Attempt"), "remote": request.remote_addr,
               "signature": request.headers.get(SIGNATURE_HEADER, "")[:200]}  # fmt: skip
    services.quarantine.keep(shop_id, reason, raw, signed=signed, details=details)
    log.warning("kiotviet.delivery_quarantined", shop_id=shop_id, reason=reason[:200], signed=signed)


def unavailable() -> tuple[Response, int]:
    response = jsonify(status="unavailable", reason="cannot persist the delivery now")
    response.headers["Retry-After"] = "30"
    return response, 503
