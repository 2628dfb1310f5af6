"""The version guard of the two-way paths: under an entity's lock, a write happens only when its
content is newer than what was applied (or as new with other content), and is then recorded."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

from adapters.pending import Applied
from schemas.events import Outcome
from workers.context import ShopContext

log = structlog.get_logger(__name__)


def guarded(
    ctx: ShopContext, kind: str, entity_id: str, order: int, fingerprint: str, write: Callable[[], Any]
) -> Outcome:
    """Run `write` for this version of the entity unless it is not newer than what was applied."""
    shop = ctx.connection.shop_id
    with ctx.state.entity_lock(shop, kind, entity_id):
        current = ctx.pending.applied(shop, kind, [entity_id])[entity_id]
        if current is not None and not current.is_older_than(order, fingerprint):
            log.info("change.stale", kind=kind, entity_id=entity_id)
            return Outcome.STALE
        write()
        ctx.pending.record_applied(shop, kind, {entity_id: Applied(order, fingerprint)})
    return Outcome.APPLIED
