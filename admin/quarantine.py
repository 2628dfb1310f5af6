"""Re-checking quarantined deliveries once an operator fixed their cause (a secret, a connection)
and admitting those that now pass, as if KiotViet had just delivered them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import structlog

from webhooks.deliveries import Rejected, check_delivery
from wiring import Services

log = structlog.get_logger(__name__)


@dataclass
class Admitted:
    admitted: list[str] = field(default_factory=list)
    still_rejected: list[dict[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"admitted": self.admitted, "still_rejected": self.still_rejected}


def admit(services: Services, shop_id: str, entry_id: str | None = None) -> Admitted:
    """Re-check one quarantined delivery of the shop (or all of them); accept what passes."""
    result = Admitted()
    shop = services.shops.lookup(shop_id, fresh=True)
    entries = [e for e in services.quarantine.entries(shop_id, limit=1000) if entry_id in (None, e.id)]
    for entry in entries:
        raw = services.quarantine.body(shop_id, entry)
        if raw is None or shop is None:
            result.still_rejected.append({"id": entry.id, "reason": "the delivery's body or shop is gone"})
            continue
        try:
            normalized, _ = check_delivery(services, shop_id, raw, str(entry.details.get("signature") or ""))
        except Rejected as exc:
            result.still_rejected.append({"id": entry.id, "reason": str(exc)})
            continue
        services.inbox.accept(shop_id, normalized.events, branch_id=shop.connection.branch_id)
        services.quarantine.release(shop_id, entry)
        result.admitted.append(entry.id)
        log.info("quarantine.admitted", shop_id=shop_id, entry_id=entry.id, events=len(normalized.events))
    return result
