"""Starting a full sync from the admin API or the CLI."""

from __future__ import annotations

from typing import Any

from adapters.syncruns import ENTITIES
from admin.connections import ConnectionInvalid
from wiring import Services
from workers.sync import start_full_sync


def start_sync_run(services: Services, shop_id: str, body: Any) -> str:
    """Validate the request and start the run; ConnectionInvalid names what is wrong."""
    if services.connections.get(shop_id) is None:
        raise ConnectionInvalid([f"no connection for shop {shop_id}"], 404)
    if body is not None and not isinstance(body, dict):
        raise ConnectionInvalid(["body: must be a JSON object, optionally with entities"])
    wanted = (body or {}).get("entities") or list(ENTITIES)
    unknown = [e for e in wanted if e not in ENTITIES] if isinstance(wanted, list) else ["entities"]
    if unknown:
        raise ConnectionInvalid(
            [f"entities: unknown {', '.join(map(str, unknown))}; choose from {', '.join(ENTITIES)}"]
        )
    return start_full_sync(services, shop_id, [e for e in ENTITIES if e in wanted])
