"""Connections (one per shop) in Redis, their secrets encrypted at rest."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from adapters import keys
from adapters.errors import PermanentError
from adapters.vault import Vault
from schemas.kiotviet_webhook import WEBHOOK_TYPES

PREFIX = keys.CONNECTION_PREFIX
INDEX = keys.CONNECTIONS


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


# A replaced webhook secret still verifies this long, for deliveries KiotViet signed before the
# replacement and resends later; then it is forgotten. Only the last one replaced is kept, so
# checking a delivery stays a few HMACs however often the connection is saved.
RETIRED_SECRET_GRACE_SECONDS = 3 * 24 * 3600
RETIRED_SECRETS_KEPT = 1


@dataclass(frozen=True)
class HookSecret:
    """A secret given to KiotViet with one webhook; `retired_at` once another replaced it."""

    secret: str
    retired_at: float | None = None

    def __repr__(self) -> str:
        return "HookSecret(<redacted>)"


@dataclass(frozen=True)
class ConnectionSecrets:
    """The secrets of a connection; only ever held in memory decrypted."""

    client_secret: str
    abaha_api_token: str
    abaha_webhook_token: str
    # per webhook type, the current secret first, then those it replaced still in their grace
    webhook_secrets: dict[str, tuple[HookSecret, ...]] = field(default_factory=dict)

    def __repr__(self) -> str:
        return "ConnectionSecrets(<redacted>)"

    def secrets_for(self, kinds: Iterable[str], now: float) -> list[str]:
        """The secrets a delivery of these types may be signed with."""
        found: list[str] = []
        for kind in kinds:
            for hook in self.webhook_secrets.get(kind, ()):
                if hook.retired_at is None or now - hook.retired_at < RETIRED_SECRET_GRACE_SECONDS:
                    found.append(hook.secret)
        return list(dict.fromkeys(found))

    def with_new_secrets(self, fresh: dict[str, str], now: float) -> dict[str, tuple[HookSecret, ...]]:
        """The secrets after registering `fresh` ones: each type's old ones retire now."""
        result = {}
        for kind in set(self.webhook_secrets) | set(fresh):
            old = [HookSecret(h.secret, h.retired_at or now) if kind in fresh else h
                   for h in self.webhook_secrets.get(kind, ())]  # fmt: skip
            kept = [h for h in old if h.retired_at is None or now - h.retired_at < RETIRED_SECRET_GRACE_SECONDS]
            if kind in fresh:
                kept = kept[:RETIRED_SECRETS_KEPT]  # newest first: the one just replaced
            result[kind] = ((HookSecret(fresh[kind]),) if kind in fresh else ()) + tuple(kept)
        return result


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
        hooks = values.get("webhook_secrets") or {}
        if isinstance(hooks, list):  # stored before secrets were kept per type: any type's may sign
            hooks = {kind: [{"secret": secret} for secret in hooks] for kind in WEBHOOK_TYPES}
        values["webhook_secrets"] = {kind: tuple(HookSecret(**h) for h in listed) for kind, listed in hooks.items()}
        return ConnectionSecrets(**values)

    def readable_secrets(self, shop_id: str) -> ConnectionSecrets | None:
        """The secrets, or None when there are none or they were sealed under another
        SECRET_KEY (for the paths that must go on: saving again, deleting, verifying)."""
        try:
            return self.secrets(shop_id)
        except PermanentError:
            return None

    def save_warnings(self, shop_id: str, warnings: list[str]) -> None:
        """The connection's current warnings (reconciliation keeps them so)."""
        self._redis.set(keys.shop_key(shop_id, keys.WARNINGS), json.dumps(warnings, ensure_ascii=False))

    def warnings(self, shop_id: str) -> list[str] | None:
        raw = self._redis.get(keys.shop_key(shop_id, keys.WARNINGS))
        return json.loads(raw) if raw else None  # type: ignore[arg-type]

    def all(self) -> list[Connection]:
        shops = sorted(_text(s) for s in self._redis.smembers(INDEX))  # type: ignore[union-attr]
        pipe = self._redis.pipeline(transaction=False)
        for shop in shops:
            pipe.hget(PREFIX + shop, "record")
        return [Connection.from_json(json.loads(raw)) for raw in pipe.execute() if raw]

    def warnings_of(self, shop_ids: list[str]) -> dict[str, list[str] | None]:
        """`warnings` of many shops in one round trip."""
        pipe = self._redis.pipeline(transaction=False)
        for shop_id in shop_ids:
            pipe.get(keys.shop_key(shop_id, keys.WARNINGS))
        return {shop: json.loads(raw) if raw else None for shop, raw in zip(shop_ids, pipe.execute(), strict=True)}

    def delete(self, shop_id: str) -> None:
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(PREFIX + shop_id)
        pipe.srem(INDEX, shop_id)
        pipe.execute()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class KnownShop:
    """A connection as the webhook endpoints need it."""

    connection: Connection
    secrets: ConnectionSecrets | None  # None: sealed under another SECRET_KEY

    def secrets_for(self, kinds: Iterable[str], now: float) -> list[str]:
        return self.secrets.secrets_for(kinds, now) if self.secrets else []


class ShopDirectory:
    """Connections with their decrypted secrets, kept in memory for a moment: the webhook
    endpoints look a shop up on every delivery. A connection saved again is seen within
    `ttl` seconds; a secret it replaced keeps verifying far longer than that anyway."""

    def __init__(self, store: ConnectionStore, ttl: float = 2.0) -> None:
        self._store = store
        self._ttl = ttl
        self._cache: dict[str, tuple[float, KnownShop]] = {}

    def lookup(self, shop_id: str, *, fresh: bool = False) -> KnownShop | None:
        """The shop, or None when no connection has this id (never cached: a shop saved a
        moment ago must be found). `fresh` reads past the cache (a signature that failed
        against cached secrets may be signed with one saved a moment ago)."""
        now = time.monotonic()
        cached = self._cache.get(shop_id)
        if not fresh and cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        connection = self._store.get(shop_id)
        if connection is None:
            self._cache.pop(shop_id, None)
            return None
        found = KnownShop(connection, self._store.readable_secrets(shop_id))
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[shop_id] = (now, found)
        return found
