"""Per-shop sync bookkeeping in Redis: applied versions, counts, parked events, locks."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import redis

from adapters.errors import TransientError

OUTCOMES = ("applied", "stale", "ignored", "echo", "not_applied", "failed", "quarantined", "total_mismatch")
PROBLEMS_KEPT = 100
# longer than a job may run (RQ stops it after EVENT_JOB_SECONDS), so a lock never lapses under
# a live job, and short enough that one a killed job held frees itself soon
LOCK_SECONDS = 120
LOCK_WAIT_SECONDS = 60


class SyncState:
    """What has been applied for a shop, so replays and shuffled deliveries converge."""

    def __init__(self, redis_client: redis.Redis) -> None:
        self._redis = redis_client

    @contextmanager
    def entity_lock(self, shop_id: str, kind: str, entity_id: str) -> Iterator[None]:
        """Serialize the check-write-record of one entity across all workers."""
        lock = self._redis.lock(
            f"sync:lock:{shop_id}:{kind}:{entity_id}", timeout=LOCK_SECONDS, blocking_timeout=LOCK_WAIT_SECONDS
        )
        if not lock.acquire():
            raise TransientError(f"{kind} {entity_id} is busy in another worker", retry_after=30)
        try:
            yield
        finally:
            # it may have expired while we worked; the version guard still holds
            with contextlib.suppress(redis.exceptions.LockError):
                lock.release()

    def applied_version(self, shop_id: str, kind: str, entity_id: str) -> int | None:
        raw = self._redis.hget(f"sync:ver:{shop_id}:{kind}", entity_id)
        return int(raw) if raw is not None else None  # type: ignore[arg-type]

    def record_version(self, shop_id: str, kind: str, entity_id: str, version: int) -> None:
        self._redis.hset(f"sync:ver:{shop_id}:{kind}", entity_id, version)

    def is_stale(self, shop_id: str, kind: str, entity_id: str, version: int, *, same_is_stale: bool = False) -> bool:
        """True when something newer than `version` was already applied (or, with
        `same_is_stale`, that very version: a redelivery that changes nothing)."""
        applied = self.applied_version(shop_id, kind, entity_id)
        if applied is None:
            return False
        return version <= applied if same_is_stale else version < applied

    def applied_versions(self, shop_id: str, kind: str, entity_ids: list[str]) -> dict[str, int | None]:
        """The applied version of many entities in one round trip (a sync page)."""
        if not entity_ids:
            return {}
        raw = self._redis.hmget(f"sync:ver:{shop_id}:{kind}", entity_ids)
        return {e: int(v) if v is not None else None for e, v in zip(entity_ids, raw, strict=True)}  # type: ignore[arg-type]

    def record_versions(self, shop_id: str, kind: str, versions: dict[str, int]) -> None:
        if versions:
            self._redis.hset(f"sync:ver:{shop_id}:{kind}", mapping=versions)  # type: ignore[arg-type]

    def stock_value(self, shop_id: str, product_id: int) -> int | None:
        """The sellable stock last written to Abaha for a product."""
        raw = self._redis.hget(f"sync:ver:{shop_id}:stockval", str(product_id))
        return int(raw) if raw is not None else None  # type: ignore[arg-type]

    def record_stock_value(self, shop_id: str, product_id: int, value: int) -> None:
        self.record_stock_values(shop_id, {product_id: value})

    def record_stock_values(self, shop_id: str, values: dict[int, int]) -> None:
        if values:
            self._redis.hset(f"sync:ver:{shop_id}:stockval", mapping={str(k): v for k, v in values.items()})

    def count(self, shop_id: str, outcome: str, amount: int = 1) -> None:
        self._redis.hincrby(f"sync:stats:{shop_id}", outcome, amount)

    def counts(self, shop_id: str) -> dict[str, int]:
        raw = self._redis.hgetall(f"sync:stats:{shop_id}")
        values = {_text(k): int(v) for k, v in raw.items()}  # type: ignore[union-attr]
        return {outcome: values.get(outcome, 0) for outcome in OUTCOMES}

    def report(self, shop_id: str, message: str) -> None:
        """Keep a problem an operator must look at (the newest 100), shown with the connection."""
        entry = json.dumps({"at": datetime.now(UTC).isoformat(timespec="seconds"), "message": message})
        pipe = self._redis.pipeline(transaction=True)
        pipe.lpush(f"sync:problems:{shop_id}", entry)
        pipe.ltrim(f"sync:problems:{shop_id}", 0, PROBLEMS_KEPT - 1)
        pipe.execute()

    def problems(self, shop_id: str) -> list[dict[str, Any]]:
        return [json.loads(e) for e in self._redis.lrange(f"sync:problems:{shop_id}", 0, PROBLEMS_KEPT)]  # type: ignore[union-attr]

    def park(self, shop_id: str, event: dict[str, Any]) -> None:
        """Keep the newest event per entity of a type this version does not apply yet."""
        self._redis.hset(f"sync:parked:{shop_id}", f"{event['type']}:{event['entity_id']}", json.dumps(event))

    def parked(self, shop_id: str) -> list[dict[str, Any]]:
        raw = self._redis.hvals(f"sync:parked:{shop_id}")
        return [json.loads(v) for v in raw]  # type: ignore[union-attr]

    def forget_shop(self, shop_id: str) -> None:
        """Drop every piece of bookkeeping of a shop (its connection was deleted)."""
        keys = [f"sync:stats:{shop_id}", f"sync:parked:{shop_id}", f"sync:problems:{shop_id}"]
        # shop ids are letters, digits, '.', '_' and '-': no glob characters, and the ':' after
        # the id keeps shop-4 from matching shop-42. Links (which KiotViet order was made from
        # which Abaha order, which customers are one) are kept: saving the shop again must not
        # make a second order of one already made.
        found = (_text(k) for k in self._redis.scan_iter(match=f"sync:*:{shop_id}:*", count=500))
        keys += [k for k in found if not k.startswith("sync:links:")]
        self._redis.delete(*keys)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
