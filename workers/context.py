"""What a job needs to apply an event for one shop."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from adapters.abaha import AbahaClient
from adapters.budget import WEBHOOK, BudgetPolicy, RequestBudget
from adapters.catalog import CatalogStore
from adapters.connections import Connection
from adapters.errors import PermanentError
from adapters.kiotviet import KiotVietClient
from adapters.kiotviet_auth import KiotVietAuth
from adapters.links import LinkStore
from adapters.pending import PendingStore
from adapters.state import SyncState
from config import Settings
from wiring import Services, build_services
from workers.ports import AbahaPort, KiotVietPort


@functools.cache
def process_services() -> Services:
    """The worker process's services, built once from the environment."""
    return build_services(Settings.from_env())


@dataclass(frozen=True)
class ShopContext:
    """A shop's connection and the clients built from it."""

    connection: Connection
    kiotviet: KiotVietPort
    abaha: AbahaPort
    state: SyncState
    links: LinkStore
    pending: PendingStore
    catalog: CatalogStore
    memo: dict[str, Any] = field(default_factory=dict)  # what one batch read once for all its entities


def shop_context(services: Services, shop_id: str, priority: str = WEBHOOK) -> ShopContext | None:
    """Build the shop's clients; None when the shop has no connection (any more). `priority`
    says whose share of the shop's KiotViet budget the job spends (background keeps headroom)."""
    connection = services.connections.get(shop_id)
    secrets = services.connections.secrets(shop_id)
    if connection is None or secrets is None:
        return None
    settings = services.settings
    if not settings.abaha_api_url:
        raise PermanentError("ABAHA_API_URL is not set: the service cannot write to Abaha")
    auth = KiotVietAuth(services.redis, services.vault, settings.kiotviet_token_url,
                        read_timeout=settings.peer_read_timeout)  # fmt: skip
    kiotviet = KiotVietClient(
        base_url=settings.kiotviet_api_url,
        retailer=connection.retailer,
        client_id=connection.client_id,
        client_secret=secrets.client_secret,
        auth=auth,
        budget=RequestBudget(services.redis, BudgetPolicy(settings.kiotviet_hourly_budget)),
        priority=priority,
        read_timeout=settings.peer_read_timeout,
    )
    abaha = AbahaClient(base_url=settings.abaha_api_url, shop_id=shop_id, api_token=secrets.abaha_api_token,
                        read_timeout=settings.peer_read_timeout)  # fmt: skip
    return ShopContext(connection=connection, kiotviet=kiotviet, abaha=abaha, state=services.state,
                       links=services.links, pending=services.pending, catalog=services.catalog)  # fmt: skip
