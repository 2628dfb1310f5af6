"""KiotViet deliveries that were answered 200 but not accepted, kept for operators.

Kept per known shop, in two lists bounded in count and age: deliveries signed with the shop's
secret that still could not be read (KiotViet's own: never pushed out by strangers' posts), and
unsigned or badly signed ones (what a stale secret produces, or a stranger). A delivery to an
unknown shop id is counted by reason and never stored, so nobody can flood the store with
made-up shops or push a real shop's evidence out.
"""

from __future__ import annotations

import json
import time
import uuid
import zlib
from dataclasses import dataclass
from typing import Any

import redis

from adapters import keys

KEPT_PER_LIST = 200
KEPT_SECONDS = 30 * 24 * 3600
SIGNED, UNSIGNED = "signed", "unsigned"
PREVIEW_BYTES = 2048

_ADD = """
local index, meta, bodies = KEYS[1], KEYS[2], KEYS[3]
local id, at, entry, body = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local limit, oldest = tonumber(ARGV[5]), tonumber(ARGV[6])
redis.call('ZADD', index, at, id)
redis.call('HSET', meta, id, entry)
redis.call('HSET', bodies, id, body)
local drop = redis.call('ZRANGEBYSCORE', index, '-inf', oldest)
local extra = redis.call('ZCARD', index) - limit
if extra > 0 then
  for _, old in ipairs(redis.call('ZRANGE', index, 0, extra - 1)) do table.insert(drop, old) end
end
for _, old in ipairs(drop) do
  redis.call('ZREM', index, old)
  redis.call('HDEL', meta, old)
  redis.call('HDEL', bodies, old)
end
return #drop
"""


@dataclass(frozen=True)
class Quarantined:
    """One kept delivery: what the operator sees, and what re-checking it needs."""

    id: str
    at: str
    shop_id: str
    reason: str
    size: int
    signed: bool
    details: dict[str, Any]

    def describe(self, preview: str | None = None) -> dict[str, Any]:
        shown = {"id": self.id, "at": self.at, "shop_id": self.shop_id, "reason": self.reason, "size": self.size,
                 "signed": self.signed, **self.details}  # fmt: skip
        return {**shown, "body_preview": preview} if preview is not None else shown


class QuarantineStore:
    def __init__(self, redis_client: redis.Redis) -> None:
        self._redis = redis_client
        self._add = redis_client.register_script(_ADD)

    def keep(self, shop_id: str, reason: str, raw: bytes, *, signed: bool, details: dict[str, Any]) -> str:
        """Keep a rejected delivery of a known shop; answers its id."""
        entry_id = uuid.uuid4().hex[:16]
        now = time.time()
        entry = {"id": entry_id, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)), "reason": reason,
                 "size": len(raw), "details": details}  # fmt: skip
        which = SIGNED if signed else UNSIGNED
        self._add(keys=self._keys(shop_id, which),
                  args=[entry_id, int(now * 1000), json.dumps(entry, ensure_ascii=False), zlib.compress(raw),
                        KEPT_PER_LIST, int((now - KEPT_SECONDS) * 1000)])  # fmt: skip
        self._count(reason, shop_id)
        return entry_id

    def count_unknown_shop(self, reason: str) -> None:
        """A delivery to a shop id nobody registered: counted, never stored."""
        self._redis.hincrby(keys.UNKNOWN_SHOP_DELIVERIES, _category(reason), 1)
        self._redis.hincrby(keys.QUARANTINE_REASONS, "unknown shop", 1)

    def entries(self, shop_id: str, limit: int = 100) -> list[Quarantined]:
        """Both lists of the shop, newest first."""
        found: list[tuple[float, Quarantined]] = []
        for which in (SIGNED, UNSIGNED):
            index, meta, _ = self._keys(shop_id, which)
            ids: list[tuple[bytes, float]] = self._redis.zrevrange(index, 0, limit - 1, withscores=True)  # type: ignore[assignment]
            raw: list[bytes | None] = self._redis.hmget(meta, [i for i, _ in ids]) if ids else []  # type: ignore[assignment]
            for (_, score), text in zip(ids, raw, strict=True):
                if text is not None:
                    found.append((float(score), _entry(shop_id, which, json.loads(text))))
        return [entry for _, entry in sorted(found, key=lambda pair: -pair[0])[:limit]]

    def body(self, shop_id: str, entry: Quarantined) -> bytes | None:
        sealed = self._redis.hget(self._keys(shop_id, SIGNED if entry.signed else UNSIGNED)[2], entry.id)
        return zlib.decompress(sealed) if isinstance(sealed, bytes) else None

    def preview(self, shop_id: str, entry: Quarantined) -> str:
        raw = self.body(shop_id, entry) or b""
        return raw[:PREVIEW_BYTES].decode("utf-8", "replace")

    def release(self, shop_id: str, entry: Quarantined) -> None:
        """Forget an entry (it was admitted)."""
        index, meta, bodies = self._keys(shop_id, SIGNED if entry.signed else UNSIGNED)
        pipe = self._redis.pipeline(transaction=True)
        pipe.zrem(index, entry.id)
        pipe.hdel(meta, entry.id)
        pipe.hdel(bodies, entry.id)
        pipe.execute()

    def count(self, shop_id: str) -> int:
        return sum(int(self._redis.zcard(self._keys(shop_id, w)[0])) for w in (SIGNED, UNSIGNED))  # type: ignore[arg-type]

    def counts(self, shop_ids: list[str]) -> dict[str, int]:
        """`count` of many shops in one round trip."""
        pipe = self._redis.pipeline(transaction=False)
        for shop_id in shop_ids:
            for which in (SIGNED, UNSIGNED):
                pipe.zcard(self._keys(shop_id, which)[0])
        raw = pipe.execute()
        return {shop: int(raw[2 * i]) + int(raw[2 * i + 1]) for i, shop in enumerate(shop_ids)}

    def reasons(self) -> dict[str, int]:
        raw: dict[bytes, bytes] = self._redis.hgetall(keys.QUARANTINE_REASONS)  # type: ignore[assignment]
        return {k.decode(): int(v) for k, v in raw.items()}

    def unknown_shop_counts(self) -> dict[str, int]:
        raw: dict[bytes, bytes] = self._redis.hgetall(keys.UNKNOWN_SHOP_DELIVERIES)  # type: ignore[assignment]
        return {k.decode(): int(v) for k, v in raw.items()}

    def _count(self, reason: str, shop_id: str) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.hincrby(keys.QUARANTINE_REASONS, _category(reason), 1)
        pipe.hincrby(keys.shop_key(shop_id, keys.STATS), "quarantined", 1)
        pipe.execute()

    def _keys(self, shop_id: str, which: str) -> list[str]:
        return [keys.shop_key(shop_id, keys.QUARANTINE, which, part) for part in ("index", "meta", "bodies")]


def _category(reason: str) -> str:
    """A reason's kind, for counters of bounded cardinality ("unreadable body: …" → "unreadable body")."""
    return reason.split(":", 1)[0][:60]


def _entry(shop_id: str, which: str, values: dict[str, Any]) -> Quarantined:
    return Quarantined(values["id"], values["at"], shop_id, values["reason"], int(values["size"]), which == SIGNED,
                       dict(values.get("details") or {}))  # fmt: skip
