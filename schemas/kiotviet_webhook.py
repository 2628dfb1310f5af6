"""KiotViet's webhook envelope normalized into events, one per changed entity."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from marshmallow import Schema, ValidationError

from schemas import kiotviet as kv
from schemas import kiotviet_sales as sales
from schemas.events import Event, event_id, plain_json

WEBHOOK_TYPES = (
    "customer.update", "customer.delete", "product.update", "product.delete", "stock.update",
    "order.update", "invoice.update", "pricebook.update", "pricebook.delete",
    "pricebookdetail.update", "pricebookdetail.delete", "category.update", "category.delete",
    "branch.update", "branch.delete",
)  # fmt: skip

_UPDATES: dict[str, tuple[Schema, Callable[[Any], str]]] = {
    "product.update": (kv.ProductSchema(), lambda e: str(e.id)),
    "stock.update": (kv.StockSchema(), lambda e: f"{e.product_id}:{e.branch_id}"),
    "category.update": (kv.CategorySchema(), lambda e: str(e.id)),
    "pricebook.update": (kv.PriceBookSchema(), lambda e: str(e.id)),
    "pricebookdetail.update": (kv.PriceSchema(), lambda e: f"{e.price_book_id}:{e.product_id}"),
    "customer.update": (sales.CustomerSchema(), lambda e: str(e.id)),
    "order.update": (sales.OrderSchema(), lambda e: str(e.id)),
    "invoice.update": (sales.OrderSchema(), lambda e: str(e.id)),
    "branch.update": (sales.BranchSchema(), lambda e: str(e.id)),
}


class DeliveryRejected(ValueError):
    """The whole delivery is unreadable; the message is the reason kept in quarantine."""


@dataclass
class Normalized:
    """What one delivery became: events to enqueue and the parts that could not be read."""

    delivery_id: str
    events: list[Event] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def webhook_type(action: Any) -> str | None:
    """`product.update.500400541` → `product.update`; None when not one of the 15 types."""
    if not isinstance(action, str):
        return None
    name = ".".join(action.strip().lower().split(".")[:2])
    return name if name in WEBHOOK_TYPES else None


def normalize_delivery(raw: bytes, body: Any, shop_id: str, received_at: str) -> Normalized:
    """Turn a parsed webhook body into events; raise DeliveryRejected when nothing is usable."""
    if not isinstance(body, dict):
        raise DeliveryRejected("body is not a JSON object")
    envelope = _lowered(body)
    delivery_id = str(envelope.get("id") or hashlib.sha256(raw).hexdigest()[:32])
    result = Normalized(delivery_id=delivery_id)
    for action, data in _notifications(envelope):
        kind = webhook_type(action)
        if kind is None:
            result.problems.append(f"unknown action {str(action)[:80]!r}")
            continue
        for index, item in enumerate(_items(data)):
            try:
                entity_id, payload, version = _read_item(kind, item)
            # whatever an item holds, it is reported as a problem and the others still go
            except (ValidationError, ValueError, TypeError, KeyError, OverflowError, AttributeError) as exc:
                result.problems.append(f"{kind} item {index}: {_describe(exc)}")
                continue
            result.events.append(Event(
                id=event_id("kiotviet", shop_id, delivery_id, kind, entity_id, index),
                source="kiotviet", type=kind, shop_id=shop_id, entity_id=entity_id,
                version=version or received_at, received_at=received_at, data=payload,
            ))  # fmt: skip
    if not result.events and not result.problems:
        raise DeliveryRejected("no notifications in the delivery")
    if not result.events:
        raise DeliveryRejected("; ".join(result.problems))
    return result


def _notifications(envelope: dict[str, Any]) -> list[tuple[Any, Any]]:
    notifications = envelope.get("notifications")
    if isinstance(notifications, list):
        return [(n.get("action"), n.get("data")) for n in map(_lowered, notifications) if isinstance(n, dict)]
    if "removeid" in envelope:
        # a delete delivered bare, with its ids at the top level
        return [(envelope.get("action") or envelope.get("type"), envelope)]
    raise DeliveryRejected("no Notifications list in the envelope")


def _lowered(value: Any) -> Any:
    """A dict's own keys lower-cased (its values as they are: the schemas lower theirs, so a
    big delivery's items are not lowered twice)."""
    if isinstance(value, dict):
        return {str(key).lower(): v for key, v in value.items() if key != "__type"}
    return value


def _items(data: Any) -> list[Any]:
    """The changed entities of one notification: a list, a single object, or ids."""
    if data is None:
        return []
    items = data if isinstance(data, list) else [data]
    expanded: list[Any] = []
    for item in map(_lowered, items):
        if isinstance(item, dict) and "removeid" in item:
            ids = item["removeid"]
            expanded.extend(ids if isinstance(ids, list) else [ids])
        elif isinstance(item, dict) and isinstance(item.get("productids"), list):
            book = item.get("pricebookid")
            expanded.extend({"pricebookid": book, "productid": p} for p in item["productids"])
        else:
            expanded.append(item)
    return expanded


def _read_item(kind: str, item: Any) -> tuple[str, dict[str, Any], str | None]:
    """The entity id, the JSON payload and the version of one changed entity."""
    if kind == "stock.update":
        plain = plain_stock_item(item)
        if plain is not None:
            return f"{plain['product_id']}:{plain['branch_id']}", plain, None
    if kind in _UPDATES:
        schema, key = _UPDATES[kind]
        entity = schema.load(item)
        return key(entity), plain_json(entity), getattr(entity, "modified_date", None)
    if kind == "pricebookdetail.delete":
        return _read_price_removal(item)
    removed = int(item["id"] if isinstance(item, dict) else item)
    return str(removed), {"id": removed}, None


_STOCK_NUMBERS = ("onhand", "reserved")


def plain_stock_item(item: Any) -> dict[str, Any] | None:
    """A `stock.update` item read without marshmallow, the same as `StockSchema` reads it, when
    it is the plain kind KiotViet sends (whole ids, finite numbers, no date); None when anything
    in it is for the schema to judge. Marshmallow costs about 35 µs an item, most of a
    16,000-item delivery's answer time (`docs/benchmarks.md`)."""
    if type(item) is not dict:
        return None
    lowered = {str(key).lower(): value for key, value in item.items() if key != "__type"}
    product, branch, code = lowered.get("productid"), lowered.get("branchid"), lowered.get("productcode")
    if type(product) is not int or type(branch) is not int or not (code is None or type(code) is str):
        return None
    if lowered.get("modifieddate") is not None:
        return None
    numbers = []
    for key in _STOCK_NUMBERS:
        value = lowered.get(key)
        if value is None:
            numbers.append(0.0)
        elif type(value) in (int, float) and abs(value) < 2**53:  # not NaN nor infinite either
            numbers.append(float(value) or 0.0)
        else:
            return None
    return {"product_id": product, "product_code": code, "branch_id": branch, "on_hand": numbers[0],
            "reserved": numbers[1], "modified_date": None}  # fmt: skip


def _read_price_removal(item: Any) -> tuple[str, dict[str, Any], str | None]:
    if not isinstance(item, dict) or "pricebookid" not in item or "productid" not in item:
        raise ValueError("price removal needs PricebookId and ProductIds")
    book, product = int(item["pricebookid"]), int(item["productid"])
    return f"{book}:{product}", {"price_book_id": book, "product_id": product}, None


def _describe(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{k}: {v}" for k, v in _flatten(exc.messages).items())
    return str(exc) or type(exc).__name__


def _flatten(messages: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(messages, dict):
        return {prefix or "body": messages}
    flat: dict[str, Any] = {}
    for key, value in messages.items():
        flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat
