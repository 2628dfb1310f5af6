"""Which entity an event changes, and how it orders against other changes of that entity.

KiotViet's stock, price and delete items carry no modification time, so they are signals: "this
changed", the current value is read from KiotViet when it is applied (SPEC §5). Everything else
carries the source's own version, and a fingerprint of its content, so that two different
contents with an equal version are not taken for a repeat.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from schemas.events import Event, to_micros


class Mode(StrEnum):
    """How a change orders against others of its entity."""

    KIOTVIET = "k"  # dated by KiotViet: on an equal version with other content, read KiotViet
    ABAHA = "a"  # dated by Abaha (one-second times): on an equal version with other content, read Abaha
    READ = "r"  # content just read from the source: its version is the read's
    SIGNAL = "s"  # "this changed": no content; the current value is read when it is applied


@dataclass(frozen=True)
class Change:
    """An event as the pending store sees it."""

    event: Event
    entity: str  # "<kind>:<id>", e.g. "product:3001"
    mode: Mode
    order: int = 0  # the content's version in micros (unused for signals)
    fingerprint: str = ""

    @property
    def kind(self) -> str:
        return self.entity.split(":", 1)[0]


# Kinds of entity, in the order a batch applies them (a product's category before the product,
# a price list before its prices).
KINDS = ("category", "pricebook", "product", "stock", "price", "kv_customer", "kv_order", "abaha_customer",
         "abaha_order")  # fmt: skip
# Event types the service records and does not apply (docs/decisions.md).
NOT_SYNCED = {
    ("kiotviet", "invoice.update"), ("kiotviet", "branch.update"), ("kiotviet", "branch.delete"),
    ("kiotviet", "customer.delete"), ("abaha", "order.status_changed"),
}  # fmt: skip
NOT_IN_CONTENT = ("inventories", "modified_date", "links_given", "price_books")  # stock and prices travel apart


def fingerprint(data: Any) -> str:
    """A short hash of content, the same for the same content however it was delivered."""
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k not in NOT_IN_CONTENT}
    text = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _dated(kind: str, mode: Mode) -> Callable[[Event], Change]:
    def change(event: Event) -> Change:
        return Change(event, f"{kind}:{event.entity_id}", mode, event.version_micros, fingerprint(event.data))

    return change


def _signal(kind: str, entity_id: Callable[[Event], str] | None = None) -> Callable[[Event], Change]:
    def change(event: Event) -> Change:
        return Change(event, f"{kind}:{entity_id(event) if entity_id else event.entity_id}", Mode.SIGNAL)

    return change


_CHANGES: dict[tuple[str, str], Callable[[Event], Change]] = {
    ("kiotviet", "product.update"): _dated("product", Mode.KIOTVIET),
    ("kiotviet", "product.delete"): _signal("product"),
    ("kiotviet", "stock.update"): _signal("stock", lambda e: str(e.data["product_id"])),
    ("kiotviet", "category.update"): _dated("category", Mode.KIOTVIET),
    ("kiotviet", "category.delete"): _signal("category"),
    ("kiotviet", "pricebook.update"): _dated("pricebook", Mode.KIOTVIET),
    ("kiotviet", "pricebook.delete"): _signal("pricebook"),
    ("kiotviet", "pricebookdetail.update"): _signal("price"),
    ("kiotviet", "pricebookdetail.delete"): _signal("price"),
    ("kiotviet", "customer.update"): _dated("kv_customer", Mode.KIOTVIET),
    ("kiotviet", "order.update"): _dated("kv_order", Mode.KIOTVIET),
    ("abaha", "order.created"): _dated("abaha_order", Mode.ABAHA),
    ("abaha", "order.updated"): _dated("abaha_order", Mode.ABAHA),
    ("abaha", "customer.created"): _dated("abaha_customer", Mode.ABAHA),
    ("abaha", "customer.updated"): _dated("abaha_customer", Mode.ABAHA),
}


def change_of(event: Event, branch_id: int | None = None) -> Change | None:
    """The change an event makes; None when the service does not apply it (another branch's
    stock, a type recorded only)."""
    if (event.source, event.type) in NOT_SYNCED:
        return None
    if event.type == "stock.update" and branch_id is not None and event.data.get("branch_id") != branch_id:
        return None
    make = _CHANGES.get((event.source, event.type))
    if make is None:
        raise ValueError(f"no change is known for {event.source} {event.type}")
    return make(event)


def read_change(event: Event, kind: str, order: int) -> Change:
    """Content just read from the source (a full-sync page, a reconciliation pull, a read made
    to answer a signal): it is what the source holds, versioned by `order`."""
    return Change(event, f"{kind}:{event.entity_id}", Mode.READ, order, fingerprint(event.data))


def stock_fingerprint(value: int) -> str:
    return str(value)


def micros_of(version: str | None, fallback: int) -> int:
    return to_micros(version) if version else fallback
