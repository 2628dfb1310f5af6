"""What ties an entity on one side to the other: orders made, customers linked, content synced.

An order's record is written *before* KiotViet is asked to create it (the intent), so a retry
after a crash knows to look for the order a previous attempt may have made.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis

from adapters import clock, keys

OWN_WRITES_KEPT = 4  # per customer and side: enough for the echoes a burst of edits leaves behind
ECHO_CLOCK_SLACK_US = 2_000_000  # how far a peer's clock may run ahead of ours, and its rounding


class LinkStore:
    """Per-shop links in Redis hashes under `keys.LINKS` (kept when a connection is deleted)."""

    def __init__(self, redis_client: redis.Redis) -> None:
        self._redis = redis_client

    def _key(self, shop_id: str, what: str) -> str:
        return keys.shop_key(shop_id, keys.LINKS, what)

    def order_record(self, shop_id: str, abaha_order_id: int) -> dict[str, Any] | None:
        raw = self._redis.hget(self._key(shop_id, "orders"), str(abaha_order_id))
        return json.loads(raw) if raw else None  # type: ignore[arg-type]

    def record_intent(self, shop_id: str, abaha_order_id: int) -> dict[str, Any]:
        """Say, before asking KiotViet, that this order is about to be created."""
        record = {"state": "intent", "since": clock.now().isoformat()}
        self._redis.hset(self._key(shop_id, "orders"), str(abaha_order_id), json.dumps(record))
        return record

    def note_search(self, shop_id: str, abaha_order_id: int, record: dict[str, Any]) -> dict[str, Any]:
        """An attempt looked for the order an earlier attempt may have made, and found none."""
        noted = {**record, "searches": int(record.get("searches", 0)) + 1,
                 "searched_at": clock.now().isoformat()}  # fmt: skip
        self._redis.hset(self._key(shop_id, "orders"), str(abaha_order_id), json.dumps(noted))
        return noted

    def unresolved_orders(self, shop_id: str) -> list[dict[str, Any]]:
        """Orders whose creation in KiotViet may or may not have happened yet, for operators."""
        raw = self._redis.hgetall(self._key(shop_id, "orders"))
        found = [{"abaha_order_id": int(k), **json.loads(v)} for k, v in raw.items()]  # type: ignore[union-attr]
        return sorted((r for r in found if r.get("state") == "intent"), key=lambda r: r["since"])

    def clear_intent(self, shop_id: str, abaha_order_id: int) -> None:
        """KiotViet refused the order: nothing was created, a replay may try again."""
        self._redis.hdel(self._key(shop_id, "orders"), str(abaha_order_id))

    def record_created(
        self, shop_id: str, abaha_order_id: int, kv_order_id: int, kv_order_code: str | None
    ) -> dict[str, Any]:
        record = {"state": "created", "kv_id": kv_order_id, "kv_code": kv_order_code}
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(self._key(shop_id, "orders"), str(abaha_order_id), json.dumps(record))
        pipe.hset(self._key(shop_id, "kvorders"), str(kv_order_id), str(abaha_order_id))
        pipe.execute()
        return record

    def record_linked(self, shop_id: str, abaha_order_id: int, record: dict[str, Any], **facts: Any) -> None:
        """The link is written back on Abaha; keep what the check of totals found."""
        done = {**record, "state": "linked", **facts}
        self._redis.hset(self._key(shop_id, "orders"), str(abaha_order_id), json.dumps(done))

    def abaha_order_for(self, shop_id: str, kv_order_id: int) -> int | None:
        raw = self._redis.hget(self._key(shop_id, "kvorders"), str(kv_order_id))
        return int(raw) if raw else None  # type: ignore[arg-type]

    def link_customer(self, shop_id: str, kv_id: int, abaha_id: int) -> None:
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(self._key(shop_id, "customers_by_kv"), str(kv_id), str(abaha_id))
        pipe.hset(self._key(shop_id, "customers_by_abaha"), str(abaha_id), str(kv_id))
        pipe.execute()

    def abaha_customer_for(self, shop_id: str, kv_id: int) -> int | None:
        raw = self._redis.hget(self._key(shop_id, "customers_by_kv"), str(kv_id))
        return int(raw) if raw else None  # type: ignore[arg-type]

    def kv_customer_for(self, shop_id: str, abaha_id: int) -> int | None:
        raw = self._redis.hget(self._key(shop_id, "customers_by_abaha"), str(abaha_id))
        return int(raw) if raw else None  # type: ignore[arg-type]

    def customer_intent(self, shop_id: str, abaha_id: int) -> dict[str, Any] | None:
        raw = self._redis.hget(self._key(shop_id, "customer_intents"), str(abaha_id))
        return json.loads(raw) if raw else None  # type: ignore[arg-type]

    def record_customer_intent(self, shop_id: str, abaha_id: int, code: str) -> dict[str, Any]:
        """Say, before asking KiotViet, that a customer with this code is about to be created."""
        record = {"since": clock.now().isoformat(), "code": code}
        self._redis.hset(self._key(shop_id, "customer_intents"), str(abaha_id), json.dumps(record))
        return record

    def clear_customer_intent(self, shop_id: str, abaha_id: int) -> None:
        self._redis.hdel(self._key(shop_id, "customer_intents"), str(abaha_id))

    def remember_content(self, shop_id: str, side: str, entity_id: int, fingerprint: str) -> None:
        """This content is now on `side` (we wrote it there, or it came from there)."""
        self._redis.hset(self._key(shop_id, "content"), f"{side}:{entity_id}", fingerprint)

    @contextmanager
    def expecting_content(self, shop_id: str, side: str, entity_id: int, fingerprint: str) -> Iterator[None]:
        """Record the content before writing it (its echo may come back at once); if the write
        fails, put back what was known, so a retry is not mistaken for an echo."""
        key, field = self._key(shop_id, "content"), f"{side}:{entity_id}"
        before = self._redis.hget(key, field)
        self._redis.hset(key, field, fingerprint)
        try:
            yield
        except BaseException:
            if before is None:
                self._redis.hdel(key, field)
            else:
                self._redis.hset(key, field, before)  # type: ignore[arg-type]
            raise

    def wrote_content(self, shop_id: str, side: str, entity_id: int, fingerprint: str) -> None:
        """We wrote this content to `side` (the call has returned): kept with the second, the last
        few writes, so that an echo arriving after later changes is still known for one."""
        key, field = self._key(shop_id, "content"), f"{side}:{entity_id}:ours"
        raw = self._redis.hget(key, field)
        ours = json.loads(raw) if raw else []  # type: ignore[arg-type]
        second = int(clock.now().timestamp()) * 1_000_000
        self._redis.hset(key, field, json.dumps([*ours, [fingerprint, second]][-OWN_WRITES_KEPT:]))

    @contextmanager
    def writing(self, shop_id: str, side: str, entity_id: int | None, fingerprint: str) -> Iterator[None]:
        """Around a write of this content to `side`: kept as ours once the call returns, even
        when it failed, since a failed call may have done the write (a 5xx after it, a timeout)."""
        try:
            yield
        finally:
            if entity_id is not None:
                self.wrote_content(shop_id, side, entity_id, fingerprint)

    def is_own_echo(self, shop_id: str, side: str, entity_id: int, fingerprint: str, version: int) -> bool:
        """True when a change reported by `side` carries the content of one of our recent writes
        there and is stamped no later than that write was made (give or take the peers' clocks):
        that write's echo, however late it arrives and whatever came from `side` meanwhile."""
        raw = self._redis.hget(self._key(shop_id, "content"), f"{side}:{entity_id}:ours")
        ours: list[list[Any]] = json.loads(raw) if raw else []  # type: ignore[arg-type]
        return any(fp == fingerprint and version <= int(second) + ECHO_CLOCK_SLACK_US for fp, second in ours)

    def kiotviet_applied(self, shop_id: str, kv_id: int) -> int | None:
        """KiotViet's own time (micros) of the newest KiotViet change of this customer applied."""
        raw = self._redis.hget(self._key(shop_id, "content"), f"kiotviet:{kv_id}:applied")
        return int(raw) if raw else None  # type: ignore[arg-type]

    def record_kiotviet_applied(self, shop_id: str, kv_id: int, modified: int) -> None:
        self._redis.hset(self._key(shop_id, "content"), f"kiotviet:{kv_id}:applied", str(modified))

    def has_content(self, shop_id: str, side: str, entity_id: int, fingerprint: str) -> bool:
        """True when a change reported by `side` carries what we already know is there: our
        own write echoing back, or the same content pulled again. A real edit differs."""
        known = self._redis.hget(self._key(shop_id, "content"), f"{side}:{entity_id}")
        return known is not None and known.decode() == fingerprint  # type: ignore[union-attr]
