"""What the service knows of a shop's catalogue rows: how they are linked (variants to their
master, units to their base row), the images a unit row borrows, and the stock last written."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import redis

from adapters import keys

STOCK_CURSOR_SECONDS = 600  # a read left half-way is taken up again by the shop's next batches


@dataclass(frozen=True)
class RowRecord:
    """One KiotViet product row as last written to Abaha."""

    master_id: int | None = None  # the variant group's master row
    base_id: int | None = None  # the base-unit row of a unit row
    conversion: float | None = None  # base units in one of this row's units
    images: tuple[str, ...] = ()
    code: str | None = None

    @classmethod
    def decode(cls, text: str) -> RowRecord:
        values = json.loads(text)
        return cls(values.get("master_id"), values.get("base_id"), values.get("conversion"),
                   tuple(values.get("images") or ()), values.get("code"))  # fmt: skip


class CatalogStore:
    """Per-shop rows, unit maps and stock values in Redis hashes."""

    def __init__(self, redis_client: redis.Redis) -> None:
        self._redis = redis_client

    def records(self, shop_id: str, product_ids: Iterable[int]) -> dict[int, RowRecord]:
        ids = sorted(set(product_ids))
        if not ids:
            return {}
        raw = self._redis.hmget(keys.shop_key(shop_id, keys.CATALOG), [str(i) for i in ids])
        return {i: RowRecord.decode(_text(r)) for i, r in zip(ids, raw, strict=True) if r is not None}  # type: ignore[arg-type]

    def save_records(self, shop_id: str, records: Mapping[int, RowRecord], before: Mapping[int, RowRecord]) -> None:
        """Keep the rows, and each base row's list of unit rows in step with them."""
        if not records:
            return
        pipe = self._redis.pipeline(transaction=False)
        pipe.hset(keys.shop_key(shop_id, keys.CATALOG),
                  mapping={str(i): json.dumps(asdict(r)) for i, r in records.items()})  # fmt: skip
        for product_id, record in records.items():
            old = before.get(product_id)
            if old is not None and old.base_id and old.base_id != record.base_id:
                pipe.hdel(keys.shop_key(shop_id, keys.UNITS, old.base_id), str(product_id))
            if record.base_id:
                pipe.hset(
                    keys.shop_key(shop_id, keys.UNITS, record.base_id), str(product_id), str(record.conversion or 1)
                )
        pipe.execute()

    def units_of(self, shop_id: str, base_ids: Iterable[int]) -> dict[int, dict[int, float]]:
        """Each base row's unit rows and how many base units each holds."""
        ids = sorted(set(base_ids))
        pipe = self._redis.pipeline(transaction=False)
        for base in ids:
            pipe.hgetall(keys.shop_key(shop_id, keys.UNITS, base))
        found: dict[int, dict[int, float]] = {}
        for base, raw in zip(ids, pipe.execute(), strict=True):
            if raw:
                found[base] = {int(_text(k)): float(_text(v)) for k, v in raw.items()}
        return found

    def stock_values(self, shop_id: str, product_ids: Iterable[int]) -> dict[int, int]:
        """The sellable stock last written for these base rows (absent: never written)."""
        ids = sorted(set(product_ids))
        if not ids:
            return {}
        raw = self._redis.hmget(keys.shop_key(shop_id, keys.STOCK_VALUES), [str(i) for i in ids])
        return {i: int(r) for i, r in zip(ids, raw, strict=True) if r is not None}  # type: ignore[arg-type]

    def save_stock_values(self, shop_id: str, values: Mapping[int, int], *, only_new: bool = False) -> None:
        """Record stock written to Abaha; `only_new` never replaces a value (a product body's
        stock, which a read of the stock itself must win over)."""
        if not values:
            return
        key = keys.shop_key(shop_id, keys.STOCK_VALUES)
        if only_new:
            pipe = self._redis.pipeline(transaction=False)
            for product_id, value in values.items():
                pipe.hsetnx(key, str(product_id), value)
            pipe.execute()
        else:
            self._redis.hset(key, mapping={str(k): v for k, v in values.items()})  # type: ignore[arg-type]

    def stock_cursor(self, shop_id: str, since: str) -> tuple[str, int]:
        """Where to read stock changed since `since`: the read an earlier batch stopped for time,
        when it asked for changes since then or earlier (a superset: a delivery whose items were
        taken either side of a minute goes on all the same), else `since` from the start."""
        raw = self._redis.get(keys.shop_key(shop_id, keys.STOCK_CURSOR))
        saved = json.loads(raw) if raw else {}  # type: ignore[arg-type]
        earlier = saved.get("since")
        if earlier and datetime.fromisoformat(earlier) <= datetime.fromisoformat(since):
            return earlier, int(saved.get("offset", 0))
        return since, 0

    def save_stock_cursor(self, shop_id: str, since: str, offset: int | None) -> None:
        """Where to go on reading stock changed since `since`; None: the read reached the end."""
        key = keys.shop_key(shop_id, keys.STOCK_CURSOR)
        if offset is None:
            self._redis.delete(key)
        else:
            self._redis.set(key, json.dumps({"since": since, "offset": offset}), ex=STOCK_CURSOR_SECONDS)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
