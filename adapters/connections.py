"""Connections (one per shop) in Redis, their secrets encrypted at rest."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from adapters.errors import PermanentError
from adapters.vault import Vault

PREFIX = "sync:conn:"
INDEX = "sync:conns"


@dataclass(frozen=True)
class WebhookRegistration:
    type: str
    id: int | str


@dataclass(frozen=True)
class Connection:
    """What the service knows of a shop's link to KiotViet; nothing here is secret."""

    shop_id: str
    retailer: str
    client_id: str
    branch_id: int
    surcharge_code: str | None = None
    surcharge_id: int | None = None
    webhooks: tuple[WebhookRegistration, ...] = ()
    warnings: tuple[str, ...] = ()
    saved_at: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Connection:
        values = dict(data)
        values["webhooks"] = tuple(WebhookRegistration(**w) for w in values.get("webhooks", ()))
        values["warnings"] = tuple(values.get("warnings", ()))
        return cls(**values)


@dataclass(frozen=True)
class ConnectionSecrets:
    """The secrets of a connection; only ever held in memory decrypted."""

    client_secret: str
    abaha_api_token: str
    abaha_webhook_token: str
    # every secret given to KiotViet for this shop, newest first: a delivery signed with the
    # secret of a webhook just replaced still verifies
    webhook_secrets: tuple[str, ...] = field(default_factory=tuple)

    def __repr__(self) -> str:
        return "ConnectionSecrets(<redacted>)"


class ConnectionStore:
    """Reads and writes connections; secrets pass through the vault."""

    def __init__(self, redis_client: redis.Redis, vault: Vault) -> None:
        self._redis = redis_client
        self._vault = vault

    def save(self, connection: Connection, secrets: ConnectionSecrets) -> None:
        """Store (or replace) a connection and its secrets in one step."""
        sealed = self._vault.encrypt(json.dumps(asdict(secrets)))
        key = PREFIX + connection.shop_id
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(key, mapping={"record": json.dumps(connection.to_json()), "secrets": sealed})
        pipe.sadd(INDEX, connection.shop_id)
        pipe.execute()

    def get(self, shop_id: str) -> Connection | None:
        raw = self._redis.hget(PREFIX + shop_id, "record")
        return Connection.from_json(json.loads(raw)) if raw else None

    def secrets(self, shop_id: str) -> ConnectionSecrets | None:
        sealed = self._redis.hget(PREFIX + shop_id, "secrets")
        if not sealed:
            return None
        values = json.loads(self._vault.decrypt(_text(sealed)))
        values["webhook_secrets"] = tuple(values.get("webhook_secrets", ()))
        return ConnectionSecrets(**values)

    def readable_secrets(self, shop_id: str) -> ConnectionSecrets | None:
        """The secrets, or None when there are none or they were sealed under another
        SECRET_KEY (for the paths that must go on: saving again, deleting, verifying)."""
        try:
            return self.secrets(shop_id)
        except PermanentError:
            return None

    def all(self) -> list[Connection]:
        shops = sorted(_text(s) for s in self._redis.smembers(INDEX))  # type: ignore[union-attr]
        return [c for c in (self.get(shop) for shop in shops) if c is not None]

    def delete(self, shop_id: str) -> None:
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(PREFIX + shop_id)
        pipe.srem(INDEX, shop_id)
        pipe.execute()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
