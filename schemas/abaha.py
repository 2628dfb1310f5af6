"""Abaha's events (`abaha-api.md` §2) parsed into frozen dataclasses and normalized events."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, validate

from schemas.events import Event, event_id, plain_json

ORDER_TYPES = ("order.created", "order.updated", "order.status_changed")
CUSTOMER_TYPES = ("customer.created", "customer.updated")
EVENT_TYPES = ORDER_TYPES + CUSTOMER_TYPES
ID_RANGE = validate.Range(min=1, max=2**63 - 1)


class AbahaEventInvalid(ValueError):
    """The body is not an event we can read; the message says why (answered 400)."""


class _Schema(Schema):
    class Meta:
        unknown = EXCLUDE


def _text() -> fields.Str:
    return fields.Str(load_default=None, allow_none=True)


def _id(required: bool = True) -> fields.Int:
    """An id: a positive 64-bit integer (an id of -5 or of 400 digits would only fail later)."""
    if required:
        return fields.Int(required=True, strict=False, validate=ID_RANGE)
    return fields.Int(load_default=None, allow_none=True, strict=False, validate=ID_RANGE)


def _money(required: bool = False) -> fields.Int:
    """Whole VND, never negative."""
    if required:
        return fields.Int(required=True, strict=False, validate=validate.Range(min=0))
    return fields.Int(load_default=0, strict=False, validate=validate.Range(min=0))


@dataclass(frozen=True)
class AbahaAddress:
    name: str | None
    phone: str | None
    address: str | None
    ward: str | None
    district: str | None
    province: str | None


@dataclass(frozen=True)
class AbahaItem:
    sku: str
    kv_product_id: int | None
    name: str | None
    quantity: int
    unit_price: int
    discount: int


@dataclass(frozen=True)
class AbahaFee:
    name: str | None
    amount: int


@dataclass(frozen=True)
class AbahaOrder:
    id: int
    code: str
    status: str | None
    created_at: str | None
    updated_at: str | None
    customer: AbahaAddress | None
    items: tuple[AbahaItem, ...]
    discount: int
    shipping_fee: int
    other_fees: tuple[AbahaFee, ...]
    total: int
    payment_method: str | None
    note: str | None
    shipping_address: AbahaAddress | None

    @property
    def fees(self) -> int:
        """Shipping plus every other fee: what becomes KiotViet's one surcharge."""
        return self.shipping_fee + sum(fee.amount for fee in self.other_fees)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AbahaOrder:
        values = dict(data)
        values["customer"] = AbahaAddress(**data["customer"]) if data.get("customer") else None
        values["shipping_address"] = AbahaAddress(**data["shipping_address"]) if data.get("shipping_address") else None
        values["items"] = tuple(AbahaItem(**item) for item in data["items"])
        values["other_fees"] = tuple(AbahaFee(**fee) for fee in data["other_fees"])
        return cls(**values)


@dataclass(frozen=True)
class AbahaCustomer:
    id: int
    name: str | None
    phone: str | None
    email: str | None
    gender: str | None
    birth_date: str | None
    address: str | None
    ward: str | None
    district: str | None
    province: str | None
    updated_at: str | None
    kv_id: int | None


class AddressSchema(_Schema):
    name = fields.Str(load_default=None, allow_none=True, data_key="name")
    receiver = _text()
    phone = _text()
    address = _text()
    ward = _text()
    district = _text()
    province = _text()

    @post_load
    def make(self, v: dict[str, Any], **_: Any) -> AbahaAddress:
        name = v.pop("receiver", None) or v.get("name")
        return AbahaAddress(name=name, phone=v["phone"], address=v["address"], ward=v["ward"],
                            district=v["district"], province=v["province"])  # fmt: skip


class ItemSchema(_Schema):
    sku = fields.Str(required=True, validate=validate.Length(min=1))
    kv_product_id = _id(required=False)
    name = _text()
    quantity = fields.Int(required=True, strict=False, validate=validate.Range(min=1))
    unit_price = _money(required=True)
    discount = _money()

    @post_load
    def make(self, v: dict[str, Any], **_: Any) -> AbahaItem:
        return AbahaItem(**v)


class FeeSchema(_Schema):
    name = _text()
    amount = _money(required=True)

    @post_load
    def make(self, v: dict[str, Any], **_: Any) -> AbahaFee:
        return AbahaFee(**v)


class OrderSchema(_Schema):
    id = _id()
    code = fields.Str(required=True)
    status = _text()
    created_at = fields.AwareDateTime(load_default=None, allow_none=True, format="iso")
    updated_at = fields.AwareDateTime(load_default=None, allow_none=True, format="iso")
    customer = fields.Nested(AddressSchema, load_default=None, allow_none=True)
    items = fields.List(fields.Nested(ItemSchema), required=True, validate=validate.Length(min=1))
    discount = _money()
    shipping_fee = _money()
    other_fees = fields.List(fields.Nested(FeeSchema), load_default=list)
    total = _money(required=True)
    payment_method = _text()
    note = _text()
    shipping_address = fields.Nested(AddressSchema, load_default=None, allow_none=True)

    @post_load
    def make(self, v: dict[str, Any], **_: Any) -> AbahaOrder:
        for key in ("created_at", "updated_at"):
            v[key] = v[key].isoformat() if v.get(key) else None
        v["items"], v["other_fees"] = tuple(v["items"]), tuple(v["other_fees"])
        return AbahaOrder(**v)


class StatusChangeSchema(_Schema):
    id = _id()
    status = _text()
    updated_at = fields.AwareDateTime(load_default=None, allow_none=True, format="iso")

    @post_load
    def make(self, v: dict[str, Any], **_: Any) -> dict[str, Any]:
        changed = v["updated_at"].isoformat() if v["updated_at"] else None
        return {"id": v["id"], "status": v["status"], "updated_at": changed}


class CustomerSchema(_Schema):
    id = _id()
    name = _text()
    phone = _text()
    email = _text()
    gender = fields.Str(load_default=None, allow_none=True, validate=validate.OneOf(["male", "female"]))
    birth_date = _text()
    address = _text()
    ward = _text()
    district = _text()
    province = _text()
    updated_at = fields.AwareDateTime(load_default=None, allow_none=True, format="iso")
    kv_id = _id(required=False)

    @post_load
    def make(self, v: dict[str, Any], **_: Any) -> AbahaCustomer:
        v["updated_at"] = v["updated_at"].isoformat() if v.get("updated_at") else None
        return AbahaCustomer(**v)


class EnvelopeSchema(_Schema):
    id = fields.Str(required=True, validate=validate.Length(min=1, max=200))
    type = fields.Str(required=True)
    shop_id = fields.Str(load_default=None, allow_none=True)
    occurred_at = fields.AwareDateTime(required=True, format="iso")
    data = fields.Dict(required=True)


_DATA_SCHEMAS: dict[str, Schema] = {
    **{kind: OrderSchema() for kind in ("order.created", "order.updated")},
    "order.status_changed": StatusChangeSchema(),
    **{kind: CustomerSchema() for kind in CUSTOMER_TYPES},
}


def normalize_event(body: Any, shop_id: str, received_at: str) -> Event | None:
    """One Abaha event as a normalized event; None for a type the service does not handle."""
    try:
        envelope = EnvelopeSchema().load(body if isinstance(body, dict) else {"_": body})
    except ValidationError as exc:
        raise AbahaEventInvalid(_messages(exc)) from exc
    if envelope["shop_id"] not in (None, shop_id):
        raise AbahaEventInvalid(f"shop_id {envelope['shop_id']!r} is not this endpoint's shop {shop_id!r}")
    kind = envelope["type"]
    if kind not in _DATA_SCHEMAS:
        return None
    try:
        entity = _DATA_SCHEMAS[kind].load(envelope["data"])
    except ValidationError as exc:
        raise AbahaEventInvalid(_messages(exc, "data")) from exc
    data = entity if isinstance(entity, dict) else plain_json(asdict(entity))
    occurred = envelope["occurred_at"].isoformat()
    return Event(
        id=event_id("abaha", shop_id, envelope["id"]), source="abaha", type=kind, shop_id=shop_id,
        entity_id=str(data["id"]), version=data.get("updated_at") or occurred, received_at=received_at, data=data,
    )  # fmt: skip


def _messages(exc: ValidationError, prefix: str = "") -> str:
    messages = exc.messages if isinstance(exc.messages, dict) else {"body": exc.messages}
    parts = []
    for key, value in sorted(messages.items(), key=lambda kv: str(kv[0])):
        name = f"{prefix}.{key}" if prefix else str(key)
        parts.append(f"{name}: {value}" if not isinstance(value, list) else f"{name}: {' '.join(map(str, value))}")
    return "; ".join(parts)
