"""The shop's KiotViet webhooks: KiotViet keeps one per type, and another integration (MyKiotViet,
a website plugin) may hold a type. Saving a connection takes a held type only when asked to;
reconciliation re-registers ours where KiotViet removed or deactivated them and the type is
free, and keeps the connection's warnings current (SPEC §4.3)."""

from __future__ import annotations

import base64
import re
import secrets
import time
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

import structlog

from adapters.connections import Connection, ConnectionSecrets, ConnectionStore, WebhookRegistration
from schemas.kiotviet_sales import KvSettings, KvWebhook
from schemas.kiotviet_webhook import WEBHOOK_TYPES
from workers.ports import KiotVietPort

log = structlog.get_logger(__name__)
OUT_OF_STOCK_WARNING = (
    "KiotViet's setting 'Cho phép đặt hàng khi hết tồn kho' (AllowOrderWhenOutStock) is off: "
    "orders for products out of stock at the branch will be refused by KiotViet"
)


@dataclass
class Survey:
    """Who holds each webhook type of the retailer."""

    ours: dict[str, list[KvWebhook]] = field(default_factory=dict)  # pointing at this service's URL
    taken: dict[str, KvWebhook] = field(default_factory=dict)  # pointing somewhere else

    def free(self) -> list[str]:
        return [kind for kind in WEBHOOK_TYPES if kind not in self.taken]


def survey(client: KiotVietPort, url: str) -> Survey:
    found = Survey()
    for hook in client.webhooks():
        if hook.type not in WEBHOOK_TYPES:
            continue
        if same_url(hook.url, url):
            found.ours.setdefault(hook.type, []).append(hook)
        else:
            found.taken[hook.type] = hook
    return found


def same_url(given: str | None, ours: str) -> bool:
    return (given or "").rstrip("/").lower() == ours.rstrip("/").lower()


def host_of(hook: KvWebhook) -> str:
    return urlsplit(hook.url or "").netloc or (hook.url or "an unknown address")


def taken_message(kind: str, hook: KvWebhook) -> str:
    return (f"webhook {kind}: KiotViet already sends it to {host_of(hook)} (another integration); KiotViet keeps "
            "one webhook per type, so taking it stops that integration's updates")  # fmt: skip


HELD = re.compile(r"^webhook (\S+) is held by ")


def taken_over_warning(kind: str, host: str) -> str:
    return f"webhook {kind} was taken over from {host}, which no longer receives it"


def held_elsewhere(warnings: list[str]) -> list[str]:
    """The webhook types that `current_warnings` says another integration holds."""
    found = (HELD.match(warning) for warning in warnings)
    return [match.group(1) for match in found if match]


def current_warnings(settings: KvSettings, found: Survey, taken_over: list[str] | None = None) -> list[str]:
    """What an operator should know now: types another integration holds, and ordering when out
    of stock being off."""
    warnings = [f"webhook {kind} is held by {host_of(hook)}: this shop's {kind} changes arrive by "
                "reconciliation only" for kind, hook in sorted(found.taken.items())]  # fmt: skip
    if settings.allow_order_when_out_of_stock is False:
        warnings.append(OUT_OF_STOCK_WARNING)
    return [*(taken_over or []), *warnings]


def register(
    client: KiotVietPort,
    store: ConnectionStore,
    connection: Connection,
    stored: ConnectionSecrets,
    kinds: list[str],
    url: str,
) -> tuple[Connection, ConnectionSecrets]:
    """Register ours for `kinds`, each with a fresh secret, saved before KiotViet may use it."""
    fresh = {kind: webhook_secret() for kind in kinds}
    stored = replace(stored, webhook_secrets=stored.with_new_secrets(fresh, time.time()))
    store.save(connection, stored)
    kept = [w for w in connection.webhooks if w.type not in fresh]
    made = [WebhookRegistration(kind, client.register_webhook(kind, url, secret)) for kind, secret in fresh.items()]
    connection = replace(connection, webhooks=tuple(kept + made))
    store.save(connection, stored)
    log.info("webhooks.registered", shop_id=connection.shop_id, types=sorted(fresh))
    return connection, stored


def webhook_secret() -> str:
    """KiotViet wants a random, Base64-encoded secret of 8+ characters."""
    return base64.b64encode(secrets.token_bytes(24)).decode("ascii")
