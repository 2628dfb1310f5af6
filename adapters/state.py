"""Per-shop bookkeeping in Redis: outcome counts, problems for operators, locks of the two-way
paths, and forgetting a shop."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis

from adapters import keys
from adapters.errors import Busy
from schemas.events import Outcome

PROBLEMS_KEPT = 100
RETRIED = "retried"  # not an outcome: a change scheduled to be tried again, counted per kind
UNKNOWN_TYPE = "unknown"  # a delivery whose type could not be read
# what became of a delivery, for metrics (each is also "received")
DELIVERY_RECEIVED, DELIVERY_REJECTED, DELIVERY_DUPLICATE = "received", "rejected", "duplicate"
# seconds from a change's arrival to its write to the other side (Prometheus histogram buckets)
LAG_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800)
# A two-way lock outlives any job that holds it (RQ stops a job after `inbox.JOB_SECONDS`), and
# frees itself soon after a killed job (`tests/unit/test_timing.py` checks both)
LOCK_SECONDS = 120
LOCK_WAIT_SECONDS = 3  # then the change is tried again a few seconds later (Busy), not held in its batch


def delivery_field(source: str, kind: str, outcome: str) -> str:
    """The field of the deliveries hash that counts `source`'s deliveries of a type by outcome."""
    return f"{source}|{kind}|{outcome}"


@dataclass(frozen=True)
class Delivery:
    """A delivery counted where its events are accepted, in the same script: as received under
    each of its types, and as a duplicate when every event in it had been accepted before."""

    source: str
    types: frozenset[str]  # of a bounded set; none is counted as `UNKNOWN_TYPE`
    events: int

    def fields(self, outcome: str) -> list[str]:
        return [delivery_field(self.source, kind, outcome) for kind in sorted(self.types) or [UNKNOWN_TYPE]]


@dataclass(frozen=True)
class ShopReadings:
    """A shop's counters as metrics read them."""

    counts: dict[str, int]  # outcome → count
    kind_counts: dict[tuple[str, str], int]  # (kind, outcome) → count
    lag: dict[str, float]  # "le:<bucket>", "count", "sum", "last_at_ms"


class SyncState:
    """What happened to a shop's changes, for operators and metrics."""

    def __init__(self, redis_client: redis.Redis) -> None:
        self._redis = redis_client

    @contextmanager
    def entity_lock(self, shop_id: str, kind: str, entity_id: str) -> Iterator[None]:
        """Serialize work on one entity of the two-way paths across all workers."""
        lock = self._redis.lock(keys.shop_key(shop_id, keys.LOCK, kind, entity_id), timeout=LOCK_SECONDS,
                                blocking_timeout=LOCK_WAIT_SECONDS)  # fmt: skip
        if not lock.acquire():
            raise Busy(f"{kind} {entity_id} is busy in another worker")
        try:
            yield
        finally:
            # it may have expired while we worked; the version guard still holds
            with contextlib.suppress(redis.exceptions.LockError):
                lock.release()

    def count(self, shop_id: str, outcome: Outcome | str, amount: int = 1, kind: str | None = None) -> None:
        """Count an outcome for the shop (and for the kind of entity, when it has one)."""
        self.count_kinds(shop_id, {(kind or "", str(outcome)): amount})

    def count_kinds(self, shop_id: str, counts: Mapping[tuple[str, str], int]) -> None:
        """Count (kind, outcome) pairs: the shop's totals per outcome, and per kind for metrics."""
        pipe = self._redis.pipeline(transaction=False)
        for (kind, outcome), amount in counts.items():
            if not amount:
                continue
            if outcome != RETRIED:
                pipe.hincrby(keys.shop_key(shop_id, keys.STATS), outcome, amount)
            if kind:
                pipe.hincrby(keys.shop_key(shop_id, keys.KIND_STATS), f"{kind}|{outcome}", amount)
        pipe.execute()

    def kind_counts(self, shop_id: str) -> dict[tuple[str, str], int]:
        """(kind, outcome) → count, as `count_kinds` and the ingest script counted them."""
        raw: dict[bytes, bytes] = self._redis.hgetall(keys.shop_key(shop_id, keys.KIND_STATS))  # type: ignore[assignment]
        found = {}
        for key, value in raw.items():
            kind, _, outcome = _text(key).partition("|")
            found[(kind, outcome)] = int(value)
        return found

    def count_delivery(self, source: str, types: Iterable[str], outcome: str | None = None) -> None:
        """A delivery received from `source`, under each of its types (from a bounded set), and
        what became of it when that was not simply accepted (`DELIVERY_REJECTED`, `DELIVERY_DUPLICATE`)."""
        delivery = Delivery(source, frozenset(types), 0)
        pipe = self._redis.pipeline(transaction=False)
        for counted in (DELIVERY_RECEIVED, outcome) if outcome else (DELIVERY_RECEIVED,):
            for field in delivery.fields(counted):
                pipe.hincrby(keys.DELIVERIES, field, 1)
        pipe.execute()

    def delivery_counts(self) -> dict[tuple[str, str, str], int]:
        """(source, type, outcome) → deliveries."""
        raw: dict[bytes, bytes] = self._redis.hgetall(keys.DELIVERIES)  # type: ignore[assignment]
        found = {}
        for key, value in raw.items():
            parts = _text(key).split("|")
            if len(parts) == 3:
                found[(parts[0], parts[1], parts[2])] = int(value)
        return found

    def record_writes(self, shop_id: str, lags: list[float], now_ms: int) -> None:
        """Changes written to the other side: how long each took from its arrival, and when."""
        if not lags:
            return
        key = keys.shop_key(shop_id, keys.LAG)
        pipe = self._redis.pipeline(transaction=False)
        for lag in lags:
            bucket = next((b for b in LAG_BUCKETS if lag <= b), "+Inf")
            pipe.hincrby(key, f"le:{bucket}", 1)
        pipe.hincrby(key, "count", len(lags))
        pipe.hincrbyfloat(key, "sum", sum(lags))
        pipe.hset(key, "last_at_ms", now_ms)
        pipe.execute()

    def lag(self, shop_id: str) -> dict[str, float]:
        raw = self._redis.hgetall(keys.shop_key(shop_id, keys.LAG))
        return {_text(k): float(v) for k, v in raw.items()}  # type: ignore[union-attr]

    def readings(self, shop_ids: list[str]) -> dict[str, ShopReadings]:
        """`counts`, `kind_counts` and `lag` of many shops, in one round trip."""
        pipe = self._redis.pipeline(transaction=False)
        for shop_id in shop_ids:
            for part in (keys.STATS, keys.KIND_STATS, keys.LAG):
                pipe.hgetall(keys.shop_key(shop_id, part))
        raw = pipe.execute()
        found = {}
        for index, shop_id in enumerate(shop_ids):
            stats, kinds, lag = (_texts(h) for h in raw[index * 3 : index * 3 + 3])
            counts = {str(o): int(stats.get(str(o), 0)) for o in Outcome}
            by_kind = {(k.partition("|")[0], k.partition("|")[2]): int(v) for k, v in kinds.items()}
            found[shop_id] = ShopReadings(counts, by_kind, {k: float(v) for k, v in lag.items()})
        return found

    def record_failure(self, shop_id: str, now_ms: int, what: str) -> None:
        """A change failed for good (kept for the operator): counted for "failures in the last hour"."""
        key = keys.shop_key(shop_id, keys.FAILURES)
        pipe = self._redis.pipeline(transaction=False)
        pipe.zadd(key, {f"{now_ms}:{what}": now_ms})
        pipe.zremrangebyscore(key, "-inf", now_ms - 24 * 3600 * 1000)
        pipe.execute()

    def failures_since(self, shop_id: str, since_ms: int) -> int:
        return int(self._redis.zcount(keys.shop_key(shop_id, keys.FAILURES), since_ms, "+inf"))  # type: ignore[arg-type]

    def counts(self, shop_id: str) -> dict[str, int]:
        raw = self._redis.hgetall(keys.shop_key(shop_id, keys.STATS))
        values = {_text(k): int(v) for k, v in raw.items()}  # type: ignore[union-attr]
        return {str(outcome): values.get(str(outcome), 0) for outcome in Outcome}

    def report(self, shop_id: str, message: str) -> None:
        """Keep a problem an operator must look at (the newest 100), shown with the connection."""
        entry = json.dumps({"at": datetime.now(UTC).isoformat(timespec="seconds"), "message": message})
        key = keys.shop_key(shop_id, keys.PROBLEMS)
        pipe = self._redis.pipeline(transaction=True)
        pipe.lpush(key, entry)
        pipe.ltrim(key, 0, PROBLEMS_KEPT - 1)
        pipe.execute()

    def problems(self, shop_id: str) -> list[dict[str, Any]]:
        raw = self._redis.lrange(keys.shop_key(shop_id, keys.PROBLEMS), 0, PROBLEMS_KEPT)
        return [json.loads(e) for e in raw]  # type: ignore[union-attr]

    def forget_shop(self, shop_id: str) -> None:
        """Drop every key of a shop (its connection was deleted) but its links: saving the shop
        again must not make a second KiotViet order of one already made, or a second customer."""
        prefix = keys.shop_prefix(shop_id)
        kept = tuple(prefix + part for part in keys.KEPT_ON_DELETE)
        doomed = [k for k in (_text(k) for k in self._redis.scan_iter(match=prefix + "*", count=1000))
                  if not k.startswith(kept)]  # fmt: skip
        for start in range(0, len(doomed), 500):
            self._redis.delete(*doomed[start : start + 500])
        self._redis.zrem(keys.READY, shop_id)
        members: list[bytes] = self._redis.zrange(keys.LEASES, 0, -1)  # type: ignore[assignment]
        leases = [m for m in members if _text(m).split("\t", 1)[0] == shop_id]
        if leases:
            self._redis.zrem(keys.LEASES, *leases)


def _texts(raw: dict[bytes, bytes]) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in raw.items()}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
