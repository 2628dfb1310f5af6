"""Full-sync runs and reconciliation watermarks of each shop, in Redis."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import redis

from adapters import keys

ENTITIES = ("categories", "products", "pricebooks", "customer_groups", "customers")
ERRORS_KEPT = 50


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class SyncRuns:
    """The latest full sync of each shop: its state, progress per entity and errors."""

    def __init__(self, redis_client: redis.Redis) -> None:
        self._redis = redis_client

    def _key(self, shop_id: str, run_id: str) -> str:
        return keys.shop_key(shop_id, keys.RUN, run_id)

    def start(self, shop_id: str, entities: list[str]) -> str:
        """A new run, which supersedes any earlier one still going."""
        run_id = uuid.uuid4().hex[:16]
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(self._key(shop_id, run_id), mapping={"id": run_id, "state": "queued", "queued_at": _now(),
                                                       "entities": json.dumps(entities)})  # fmt: skip
        pipe.expire(self._key(shop_id, run_id), 30 * 24 * 3600)
        pipe.set(keys.shop_key(shop_id, keys.RUN, "latest"), run_id)
        pipe.execute()
        return run_id

    def latest_id(self, shop_id: str) -> str | None:
        raw = self._redis.get(keys.shop_key(shop_id, keys.RUN, "latest"))
        return raw.decode() if isinstance(raw, bytes) else None

    def is_current(self, shop_id: str, run_id: str) -> bool:
        return self.latest_id(shop_id) == run_id

    def set_state(self, shop_id: str, run_id: str, state: str) -> None:
        """Move the run to `state`; `<state>_at` keeps when it first got there."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(self._key(shop_id, run_id), "state", state)
        pipe.hsetnx(self._key(shop_id, run_id), f"{state}_at", _now())
        pipe.execute()

    def progress(self, shop_id: str, run_id: str, entity: str, done: int, total: int | None) -> None:
        """Add `done` items of `entity`; record its total when the page told it."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.hincrby(self._key(shop_id, run_id), f"{entity}:done", done)
        if total is not None:
            pipe.hset(self._key(shop_id, run_id), f"{entity}:total", total)
        pipe.execute()

    def add_total(self, shop_id: str, run_id: str, entity: str, total: int) -> None:
        self._redis.hincrby(self._key(shop_id, run_id), f"{entity}:total", total)

    def remember(self, shop_id: str, run_id: str, name: str, value: Any) -> None:
        """Something a later step of the run needs (the price books found, the groups)."""
        self._redis.hset(self._key(shop_id, run_id), f"memo:{name}", json.dumps(value))

    def recall(self, shop_id: str, run_id: str, name: str) -> Any:
        raw = self._redis.hget(self._key(shop_id, run_id), f"memo:{name}")
        return json.loads(raw) if raw else None  # type: ignore[arg-type]

    def error(self, shop_id: str, run_id: str, message: str) -> None:
        key = self._key(shop_id, run_id) + ":errors"
        pipe = self._redis.pipeline(transaction=True)
        pipe.rpush(key, message)
        pipe.ltrim(key, -ERRORS_KEPT, -1)
        pipe.expire(key, 30 * 24 * 3600)
        pipe.execute()

    def describe(self, shop_id: str, run_id: str | None = None) -> dict[str, Any] | None:
        """`{"id", "state", "entities": {name: {"done", "total"}}, "errors"}` (SPEC §4.3)."""
        run_id = run_id or self.latest_id(shop_id)
        if run_id is None:
            return None
        raw = {k.decode(): v.decode() for k, v in self._redis.hgetall(self._key(shop_id, run_id)).items()}  # type: ignore[union-attr]
        if not raw:
            return None
        entities = {}
        for name in json.loads(raw["entities"]) + (["prices"] if "pricebooks" in raw["entities"] else []):
            total = raw.get(f"{name}:total")
            entities[name] = {"done": int(raw.get(f"{name}:done", 0)), "total": int(total) if total else None}
        errors = [e.decode() for e in self._redis.lrange(self._key(shop_id, run_id) + ":errors", 0, -1)]  # type: ignore[union-attr]
        times = {k: v for k, v in raw.items() if k.endswith("_at")}
        return {"id": run_id, "state": raw["state"], "entities": entities, "errors": errors, **times}


class Watermarks:
    """Up to when each kind of change has been pulled, per shop; they survive restarts."""

    def __init__(self, redis_client: redis.Redis) -> None:
        self._redis = redis_client

    def get(self, shop_id: str, name: str) -> str | None:
        raw = self._redis.hget(keys.shop_key(shop_id, keys.WATERMARKS), name)
        return raw.decode() if isinstance(raw, bytes) else None

    def set(self, shop_id: str, name: str, value: str) -> None:
        self._redis.hset(keys.shop_key(shop_id, keys.WATERMARKS), name, value)

    def checkpoint(self, shop_id: str, name: str) -> dict[str, Any] | None:
        """Where an unfinished pull stopped: its `since`, when it began, the next position."""
        raw = self._redis.hget(keys.shop_key(shop_id, keys.WATERMARKS), f"{name}:checkpoint")
        return json.loads(raw) if raw else None  # type: ignore[arg-type]

    def save_checkpoint(self, shop_id: str, name: str, checkpoint: dict[str, Any]) -> None:
        self._redis.hset(keys.shop_key(shop_id, keys.WATERMARKS), f"{name}:checkpoint", json.dumps(checkpoint))

    def finish(self, shop_id: str, name: str, watermark: str) -> None:
        """The pull is complete: move the watermark, forget the checkpoint."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(keys.shop_key(shop_id, keys.WATERMARKS), name, watermark)
        pipe.hdel(keys.shop_key(shop_id, keys.WATERMARKS), f"{name}:checkpoint")
        pipe.execute()
