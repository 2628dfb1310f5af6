"""Checking a KiotViet delivery, apart from the HTTP request it came in (the endpoint checks each
delivery as it arrives; operators re-check quarantined ones once they fixed the cause)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from schemas.events import iso_utc
from schemas.kiotviet_webhook import WEBHOOK_TYPES, DeliveryRejected, Normalized, normalize_delivery
from webhooks import body
from webhooks.signature import delivery_types, matching_variant
from wiring import Services


class Rejected(Exception):
    """A delivery not accepted; `signed` when its signature held (so it is KiotViet's own)."""

    def __init__(self, reason: str, *, signed: bool = False) -> None:
        super().__init__(reason)
        self.signed = signed


def check_delivery(services: Services, shop_id: str, raw: bytes, signature: str) -> tuple[Normalized, str]:
    """The delivery's events and the signature variant that matched; Rejected says why not."""
    variant = verify(services, shop_id, raw, signature)
    try:
        return normalize_delivery(raw, parse_json(raw), shop_id, iso_utc(datetime.now(UTC))), variant
    except DeliveryRejected as exc:
        raise Rejected(str(exc), signed=True) from exc


def verify(services: Services, shop_id: str, raw: bytes, signature: str) -> str:
    """The signature variant that matched, against the secrets of the delivery's own webhook
    types (all of them when the body names none)."""
    if not signature.strip():
        raise Rejected("missing signature")
    kinds = delivery_types(raw) or set(WEBHOOK_TYPES)
    tried: list[str] = []
    for fresh in (False, True):  # cached secrets first, then any a save made a moment ago
        shop = services.shops.lookup(shop_id, fresh=fresh)
        if shop is not None and shop.secrets is None:
            raise Rejected("the shop's webhook secrets cannot be read (SECRET_KEY changed): save the connection again")
        untried = [s for s in (shop.secrets_for(kinds, time.time()) if shop else []) if s not in tried]
        variant = matching_variant(raw, signature, untried)
        if variant is not None:
            return variant
        tried += untried
    raise Rejected("bad signature")


def parse_json(raw: bytes) -> object:
    """The body, refused when it is not JSON or nests deeper than any real delivery."""
    try:
        return body.parse_json(raw)
    except body.UnreadableBody as exc:
        raise Rejected(f"unreadable body: {exc}", signed=True) from exc
