"""The webhooks the simulated KiotViet sends: bodies, signatures, and a log to resend from."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import requests

if TYPE_CHECKING:
    from sandbox.kiotviet_data import Retailer

# "hex" is what the sandbox always sent; "kiotviet-live" is what real KiotViet sends
SIGNATURE_STYLES = ("hex", "kiotviet-live", "sha256-base64", "base64-key")
DELIVERIES_KEPT = 200
TIMEOUT = 5  # KiotViet's own limit


@dataclass
class Delivery:
    """One delivery as KiotViet keeps it: its `Id`, the body of its latest attempt, who got it."""

    id: str
    kind: str
    body: bytes
    at: str
    attempt: int = 1
    sent: int = 0
    results: list[dict[str, Any]] = field(default_factory=list)


def pascal(value: Any) -> Any:
    """camelCase keys → PascalCase, as webhook bodies carry them (isActive stays lower)."""
    if isinstance(value, dict):
        return {(k if k == "isActive" else k[:1].upper() + k[1:]): pascal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [pascal(v) for v in value]
    return value


def sign(body: bytes, secret: str, style: str = "hex") -> str:
    """The `X-Hub-Signature` value of `body` for a hook's secret, in one of SIGNATURE_STYLES."""
    if style == "hex":
        return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if style == "kiotviet-live":  # the prefix says sha1, the digest is SHA-256 (kiotviet-api.md §4)
        return "sha1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if style == "sha256-base64":
        return "sha256=" + base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    if style == "base64-key":
        return hmac.new(decoded_secret(secret), body, hashlib.sha256).hexdigest()
    raise ValueError(f"unknown signature style {style!r}; one of {', '.join(SIGNATURE_STYLES)}")


def decoded_secret(secret: str) -> bytes:
    """The secret's Base64 decoding, standard or URL-safe alphabet, padding optional."""
    padded = secret + "=" * (-len(secret) % 4)
    try:
        return base64.b64decode(padded, altchars=b"-_" if "-" in secret or "_" in secret else None, validate=True)
    except binascii.Error:
        return secret.encode()  # not Base64: keyed by the text, as a lenient KiotViet would


def envelope(retailer: Retailer, kind: str, data: list[Any]) -> bytes:
    body = {"Id": str(uuid.uuid4()), "Attempt": 1,
            "Notifications": [{"Action": f"{kind}.{retailer.retailer_id}", "Data": data}]}  # fmt: skip
    return json.dumps(body, ensure_ascii=False).encode()


def prepare(retailer: Retailer, kind: str, data: list[Any]) -> Delivery:
    """Record the delivery KiotViet would make for this change, without sending it."""
    return record(retailer, kind, envelope(retailer, kind, data))


def record(retailer: Retailer, kind: str, body: bytes) -> Delivery:
    """Keep `body` in the retailer's log, under its `Id` when it has one."""
    parsed = _json(body)
    given = parsed.get("Id") if isinstance(parsed, dict) else None
    attempt = parsed.get("Attempt") if isinstance(parsed, dict) else None
    delivery = Delivery(id=str(given or uuid.uuid4()), kind=kind, body=body, at=_now(),
                        attempt=attempt if isinstance(attempt, int) else 1)  # fmt: skip
    with retailer.lock:
        retailer.deliveries.pop(delivery.id, None)
        retailer.deliveries[delivery.id] = delivery
        while len(retailer.deliveries) > DELIVERIES_KEPT:
            retailer.deliveries.pop(next(iter(retailer.deliveries)))
    return delivery


def send(retailer: Retailer, delivery: Delivery) -> list[dict[str, Any]]:
    """POST the delivery's body, signed as the retailer signs, to every active hook of its type."""
    with retailer.lock:
        hooks = [dict(h) for h in retailer.webhooks.values() if h["type"] == delivery.kind and h["isActive"]]
        style, body = retailer.signature_style, delivery.body
    results: list[dict[str, Any]] = []
    for hook in hooks:
        headers = {"Content-Type": "application/json", "X-Hub-Signature": sign(body, hook["secret"], style)}
        status: int | str
        try:
            status = requests.post(hook["url"], data=body, headers=headers, timeout=TIMEOUT).status_code
        except requests.RequestException as exc:
            status = f"error: {type(exc).__name__}"
        results.append({"url": hook["url"], "status": status})
    with retailer.lock:
        delivery.sent += 1
        delivery.results = results
    return results


def deliver(retailer: Retailer, kind: str, data: list[Any]) -> list[dict[str, Any]]:
    """POST a signed delivery of `kind` to every webhook of that type; report each answer."""
    return send(retailer, prepare(retailer, kind, data))


def redeliver(retailer: Retailer, delivery: Delivery) -> list[dict[str, Any]]:
    """Send it again as KiotViet retries: the same `Id`, the next `Attempt` (the first, if never sent)."""
    with retailer.lock:
        if delivery.sent:
            delivery.attempt += 1
            parsed = _json(delivery.body)
            if isinstance(parsed, dict) and "Attempt" in parsed:
                delivery.body = json.dumps({**parsed, "Attempt": delivery.attempt}, ensure_ascii=False).encode()
    return send(retailer, delivery)


def describe(delivery: Delivery) -> dict[str, Any]:
    """A delivery for a control route's answer: its body as JSON when it is JSON."""
    parsed = _json(delivery.body)
    return {"id": delivery.id, "type": delivery.kind, "attempt": delivery.attempt, "sent": delivery.sent,
            "at": delivery.at, "results": delivery.results,
            "body": parsed if parsed is not None else delivery.body.decode(errors="replace")}  # fmt: skip


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def _now() -> str:
    return datetime.now(timezone(timedelta(hours=7))).isoformat(timespec="milliseconds")
