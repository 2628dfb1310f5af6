"""The pending store: changes waiting to be applied, one record per entity, leased in batches.

Accepting a change claims its event id once and coalesces it with what is already pending for
the same entity (the newest content wins; "this changed, read it" signals accumulate), so a
storm of changes to a few products becomes one write per product per batch. A worker leases a
batch of a shop's pending entities; while it holds them nobody else applies them, and if it dies
its lease runs out and the entities become pending again. Every step is one Lua script over a
bounded number of entities, so no delivery holds Redis up for other shops.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import redis

from adapters import keys
from adapters.state import DELIVERY_DUPLICATE, DELIVERY_RECEIVED, Delivery
from schemas.changes import Change, Mode
from schemas.events import Event, EventSchema, to_micros

SEPARATOR = "\x1f"  # between the parts of a change in the ingest script's arguments
CHUNK = 200  # events per ingest script: about a millisecond of Redis time
CLAIM_SECONDS = 30 * 24 * 3600
DRAIN_FLAG_SECONDS = 300  # a queued drain older than this is assumed lost and queued again
_LUA = Path(__file__).parent / "lua"
_EVENT = EventSchema()


@dataclass(frozen=True)
class Meta:
    mode: Mode
    order: int | None  # None: only signals so far
    fingerprint: str
    signal_at: int  # Redis ms of the latest signal (0: none)
    count: int  # events coalesced into the record
    first_at: int

    @classmethod
    def parse(cls, text: str) -> Meta:
        mode, order, fingerprint, signal, count, first = text.split("|")
        return cls(Mode(mode), None if order == "-" else int(order), fingerprint, int(signal), int(count), int(first))


@dataclass(frozen=True)
class Pending:
    """One entity of a batch: the newest event known for it and how it got there."""

    entity: str
    event: Event
    meta: Meta

    @property
    def kind(self) -> str:
        return self.entity.split(":", 1)[0]

    @property
    def entity_id(self) -> str:
        return self.entity.split(":", 1)[1]

    def needs_read(self, applied: Applied | None) -> bool:
        """A signal newer than the last read of this entity (the applied one's, or the read
        this record carries): ask the source what it holds now."""
        own = to_micros(self.event.received_at) // 1000 if self.meta.mode is Mode.READ else 0
        return self.meta.signal_at > max(applied.read_at if applied else 0, own)


@dataclass(frozen=True)
class Batch:
    shop_id: str
    batch_id: str
    taken_at: int  # Redis ms when the batch was taken; reads made for it are at least this new
    entries: tuple[Pending, ...]
    pending_left: int
    busy_ms: int = 0  # another batch of the shop runs, its mark alive this long: nothing taken


@dataclass(frozen=True)
class Applied:
    """What was last applied to an entity: the content's version and fingerprint, and when
    (Redis ms) the source was last read for it."""

    order: int
    fingerprint: str
    read_at: int = 0

    def encode(self) -> str:
        return f"{self.order}|{self.fingerprint}|{self.read_at}"

    @classmethod
    def decode(cls, text: str) -> Applied:
        order, fingerprint, read_at = text.split("|")
        return cls(int(order), fingerprint, int(read_at))

    def is_older_than(self, order: int, fingerprint: str, *, repair: bool = False) -> bool:
        """Whether content of `order` and `fingerprint` should replace what was applied: newer,
        or as new with other content (a full sync's `repair` rewrites an equal version too)."""
        if order != self.order:
            return order > self.order
        return repair or fingerprint != self.fingerprint


@dataclass(frozen=True)
class Accepted:
    new: int = 0
    coalesced: int = 0
    stale: int = 0
    duplicate: int = 0
    drain_needed: bool = False


class Action(StrEnum):
    DONE = "done"
    BACK = "back"
    DROP = "drop"


@dataclass(frozen=True)
class Release:
    """What became of one leased entity."""

    entity: str
    action: Action
    applied: Applied | None = None


class PendingStore:
    """The Lua scripts of the pending store, over one Redis client."""

    def __init__(self, redis_client: redis.Redis) -> None:
        self._redis = redis_client
        common = (_LUA / "common.lua").read_text()
        self._scripts = {name: redis_client.register_script(common + (_LUA / f"{name}.lua").read_text())
                         for name in ("ingest", "take", "lease", "finish", "renew")}  # fmt: skip

    def accept(self, shop_id: str, changes: Sequence[Change], delivery: Delivery | None = None) -> Accepted:
        """Claim and coalesce, CHUNK events per script; the last one also counts the delivery
        the changes came in, if any (no round trip of its own)."""
        totals = [0, 0, 0, 0, 0]
        for start in range(0, len(changes), CHUNK):
            last = start + CHUNK >= len(changes)
            counted = _counted(delivery, duplicates_before=totals[3]) if last and delivery else ""
            args: list[Any] = [shop_id, CLAIM_SECONDS, DRAIN_FLAG_SECONDS, counted]
            for change in changes[start : start + CHUNK]:
                args += [_joined(change), json.dumps(change.event.to_json(), ensure_ascii=False)]
            script_keys = [keys.shop_prefix(shop_id), keys.READY, keys.DELIVERIES]
            answer = self._scripts["ingest"](keys=script_keys, args=args)
            totals = [a + int(b) for a, b in zip(totals, answer, strict=True)]
        new, coalesced, stale, duplicate, drain = totals
        return Accepted(new, coalesced, stale, duplicate, drain > 0)

    def take(self, shop_id: str, limit: int, lease_ms: int, running_ms: int) -> Batch:
        """Lease up to `limit` pending entities of the shop, oldest first, as the shop's one
        running batch (marked for `running_ms`, renewed with the lease); nothing while another
        batch of the shop runs. Either way the shop's drain flag is cleared or held for it."""
        batch_id = uuid.uuid4().hex[:16]
        args: list[str | int] = [shop_id, batch_id, limit, lease_ms, running_ms]
        answer = self._scripts["take"](keys=self._keys(shop_id), args=args)
        now, left, busy_ms, rest = int(answer[0]), int(answer[1]), int(answer[2]), answer[3:]
        entries = tuple(
            Pending(_text(rest[i]), _EVENT.load(json.loads(rest[i + 1])), Meta.parse(_text(rest[i + 2])))
            for i in range(0, len(rest), 3)
        )
        return Batch(shop_id, batch_id, now, entries, left, busy_ms)

    def lease(self, shop_id: str, entities: Iterable[str], lease_ms: int) -> tuple[str, int, set[str]]:
        """Lease entities outside a batch; answers the lease id, Redis's time and what was leased
        (the rest is held by someone else)."""
        lease_id = "lease-" + uuid.uuid4().hex[:12]
        answer = self._scripts["lease"](keys=self._keys(shop_id), args=[shop_id, lease_id, lease_ms, *entities])
        return lease_id, int(answer[0]), {_text(e) for e in answer[1:]}

    def renew(self, shop_id: str, batch_id: str, lease_ms: int, running_ms: int) -> None:
        args: list[str | int] = [shop_id, batch_id, lease_ms, running_ms]
        self._scripts["renew"](keys=[keys.shop_prefix(shop_id), keys.LEASES], args=args)

    def finish(self, shop_id: str, batch_id: str, releases: Sequence[Release]) -> int:
        """Release entities with what became of each; answers how many are still pending."""
        args: list[Any] = [shop_id, batch_id]
        for release in releases:
            args += [release.entity, release.action.value, release.applied.encode() if release.applied else ""]
        return int(self._scripts["finish"](keys=self._keys(shop_id), args=args))

    def applied(self, shop_id: str, kind: str, entity_ids: Sequence[str]) -> dict[str, Applied | None]:
        """What was last applied to these entities, in one round trip."""
        if not entity_ids:
            return {}
        raw = self._redis.hmget(keys.shop_key(shop_id, keys.APPLIED, kind), list(entity_ids))
        return {e: Applied.decode(_text(v)) if v is not None else None for e, v in zip(entity_ids, raw, strict=True)}  # type: ignore[arg-type]

    def applied_ids(self, shop_id: str, kind: str, prefix: str = "") -> set[str]:
        """The ids of every entity of a kind something was applied to (with `prefix`)."""
        key = keys.shop_key(shop_id, keys.APPLIED, kind)
        found = self._redis.hscan_iter(key, match=f"{prefix}*" if prefix else None, count=1000)
        return {_text(field) for field, _ in found}

    def record_applied(self, shop_id: str, kind: str, states: dict[str, Applied]) -> None:
        """Record applied states directly (for work that holds its own lock, not a lease)."""
        if states:
            mapping = {entity_id: state.encode() for entity_id, state in states.items()}
            self._redis.hset(keys.shop_key(shop_id, keys.APPLIED, kind), mapping=mapping)  # type: ignore[arg-type]

    def claim_drain(self, shop_id: str, seconds: int = DRAIN_FLAG_SECONDS) -> bool:
        """True when no drain of the shop is queued yet (the caller queues one)."""
        return bool(self._redis.set(keys.shop_key(shop_id, keys.DRAIN), "1", nx=True, ex=seconds))

    def which_pending(self, shop_id: str, entities: Sequence[str]) -> set[str]:
        """Which of these entities are pending now."""
        if not entities:
            return set()
        found = self._redis.hmget(keys.shop_key(shop_id, keys.PENDING_META), list(entities))
        return {e for e, meta in zip(entities, found, strict=True) if meta is not None}

    def pending_ids(self, shop_id: str, prefix: str) -> set[str]:
        """The pending entities whose key starts with `prefix` (e.g. "price:201:")."""
        found = self._redis.hscan_iter(keys.shop_key(shop_id, keys.PENDING_META), match=f"{prefix}*", count=1000)
        return {_text(field) for field, _ in found}

    def pending_count(self, shop_id: str) -> int:
        return int(self._redis.zcard(keys.shop_key(shop_id, keys.PENDING_ORDER)))  # type: ignore[arg-type]

    def oldest_pending_ms(self, shop_id: str) -> int | None:
        """When the shop's oldest pending change became pending (Redis ms)."""
        first = self._redis.zrange(keys.shop_key(shop_id, keys.PENDING_ORDER), 0, 0, withscores=True)
        return int(first[0][1]) if first else None  # type: ignore[index]

    def waiting(self, shop_ids: list[str]) -> dict[str, tuple[int, int | None]]:
        """Per shop, `pending_count` and `oldest_pending_ms`, in one round trip."""
        pipe = self._redis.pipeline(transaction=False)
        for shop_id in shop_ids:
            pipe.zcard(keys.shop_key(shop_id, keys.PENDING_ORDER))
            pipe.zrange(keys.shop_key(shop_id, keys.PENDING_ORDER), 0, 0, withscores=True)
        raw = pipe.execute()
        return {shop: (int(raw[2 * i]), int(raw[2 * i + 1][0][1]) if raw[2 * i + 1] else None)
                for i, shop in enumerate(shop_ids)}  # fmt: skip

    def waiting_shops(self, older_than_ms: int) -> list[str]:
        """Shops with changes pending since before `older_than_ms` (Redis ms)."""
        return [_text(s) for s in self._redis.zrangebyscore(keys.READY, "-inf", older_than_ms, start=0, num=1000)]  # type: ignore[union-attr]

    def expired_leases(self, now_ms: int) -> list[str]:
        """Shops with a lease that ran out (a worker died holding it)."""
        members = self._redis.zrangebyscore(keys.LEASES, "-inf", now_ms, start=0, num=1000)
        return sorted({_text(m).split("\t", 1)[0] for m in members})  # type: ignore[union-attr]

    def _keys(self, shop_id: str) -> list[str]:
        return [keys.shop_prefix(shop_id), keys.READY, keys.LEASES]


def _counted(delivery: Delivery, duplicates_before: int) -> str:
    """The ingest script's counting argument: how many of its own events must be duplicates
    for the whole delivery to be one, then each type's received and duplicate fields."""
    fields = [str(delivery.events - duplicates_before)]
    received, duplicate = delivery.fields(DELIVERY_RECEIVED), delivery.fields(DELIVERY_DUPLICATE)
    for pair in zip(received, duplicate, strict=True):
        fields += pair
    return SEPARATOR.join(fields)


def _joined(change: Change) -> str:
    """A change's id, entity, mode, order and fingerprint as one script argument."""
    parts = (change.event.id, change.entity, change.mode.value, str(change.order), change.fingerprint)
    if any(SEPARATOR in part for part in parts):
        raise ValueError(f"a change's id or entity holds the separator: {change.entity[:80]!r}")
    return SEPARATOR.join(parts)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
