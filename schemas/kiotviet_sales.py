"""KiotViet's customers, orders, branches, settings and webhooks, parsed into frozen dataclasses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from marshmallow import fields, post_load, pre_load

from schemas.kiotviet import KvDateTime, KvSchema, Money, optional_bool, optional_int, optional_text


@dataclass(frozen=True)
class KvCustomer:
    id: int
    code: str | None
    name: str | None
    gender: bool | None
    birth_date: str | None
    contact_number: str | None
    email: str | None
    address: str | None
    location_name: str | None
    ward_name: str | None
    comments: str | None
    modified_date: str | None
    # read only: the groups it is in, as ids (`groupIds`) or as names joined by "|" (`groups`)
    group_ids: tuple[int, ...] | None = None
    groups: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> KvCustomer:
        """Rebuild from the JSON form carried by an event."""
        values = dict(data)
        if values.get("group_ids") is not None:
            values["group_ids"] = tuple(values["group_ids"])
        return cls(**values)


@dataclass(frozen=True)
class KvOrder:
    id: int
    code: str | None
    order_code: str | None
    status: int | None
    status_value: str | None
    branch_id: int | None
    customer_id: int | None
    total: int | None
    description: str | None
    modified_date: str | None


@dataclass(frozen=True)
class KvBranch:
    id: int
    name: str | None
    modified_date: str | None


@dataclass(frozen=True)
class KvSettings:
    """The store settings the service reads (`GET /settings`)."""

    allow_order_when_out_of_stock: bool | None


@dataclass(frozen=True)
class KvSurcharge:
    id: int
    code: str


@dataclass(frozen=True)
class KvCustomerGroup:
    id: int
    name: str | None
    discount: float | None


@dataclass(frozen=True)
class KvWebhook:
    id: int | str
    type: str
    url: str | None
    is_active: bool


@dataclass(frozen=True)
class KvCreated:
    """What KiotViet answers to a creation: the new entity's id and code."""

    id: int
    code: str | None


class CustomerSchema(KvSchema):
    id = fields.Int(required=True)
    code = optional_text()
    name = optional_text()
    gender = optional_bool()
    birth_date = KvDateTime(load_default=None, allow_none=True, data_key="birthdate")
    contact_number = optional_text("contactnumber")
    email = optional_text()
    address = optional_text()
    location_name = optional_text("locationname")
    ward_name = optional_text("wardname")
    comments = optional_text()
    modified_date = KvDateTime(load_default=None, allow_none=True, data_key="modifieddate")
    group_ids = fields.List(fields.Int(), load_default=None, allow_none=True, data_key="groupids")
    groups = optional_text()

    @post_load
    def make(self, v: dict[str, Any], **_: Any) -> KvCustomer:
        if v.get("group_ids") is not None:
            v["group_ids"] = tuple(v["group_ids"])
        return KvCustomer(**v)


class OrderSchema(KvSchema):
    id = fields.Int(required=True)
    code = optional_text()
    order_code = optional_text("ordercode")
    status = optional_int()
    status_value = optional_text("statusvalue")
    branch_id = optional_int("branchid")
    customer_id = optional_int("customerid")
    total = Money(load_default=None, allow_none=True)
    description = optional_text()
    modified_date = KvDateTime(load_default=None, allow_none=True, data_key="modifieddate")

    @post_load
    def make(self, v: dict[str, Any], **_: Any) -> KvOrder:
        return KvOrder(**v)


class BranchSchema(KvSchema):
    id = fields.Int(required=True)
    name = optional_text("branchname")
    modified_date = KvDateTime(load_default=None, allow_none=True, data_key="modifieddate")

    @pre_load
    def webhook_name(self, data: Any, **_: Any) -> Any:
        if isinstance(data, dict) and "branchname" not in data and "name" in data:
            data = {**data, "branchname": data["name"]}
        return data

    @post_load
    def make(self, v: dict[str, Any], **_: Any) -> KvBranch:
        return KvBranch(**v)


class SettingsSchema(KvSchema):
    allow_order_when_out_of_stock = fields.Raw(load_default=None, allow_none=True, data_key="alloworderwhenoutstock")

    @pre_load
    def unwrap(self, data: Any, **_: Any) -> Any:
        # some answers wrap the settings in `data`
        return data.get("data", data) if isinstance(data, dict) and isinstance(data.get("data"), dict) else data

    @post_load
    def make(self, v: dict[str, Any], **_: Any) -> KvSettings:
        value = v.get("allow_order_when_out_of_stock")
        if value is None:
            return KvSettings(None)
        return KvSettings(value is True or str(value).strip().lower() in ("true", "1"))


class SurchargeSchema(KvSchema):
    id = fields.Int(required=True)
    code = fields.Str(load_default="", allow_none=True, data_key="surchargecode")

    @pre_load
    def code_key(self, data: Any, **_: Any) -> Any:
        if isinstance(data, dict) and "surchargecode" not in data and "code" in data:
            data = {**data, "surchargecode": data["code"]}
        return data

    @post_load
    def make(self, v: dict[str, Any], **_: Any) -> KvSurcharge:
        return KvSurcharge(v["id"], v.get("code") or "")


class CustomerGroupSchema(KvSchema):
    id = fields.Int(required=True)
    name = optional_text()
    discount = fields.Float(load_default=None, allow_none=True)

    @post_load
    def make(self, v: dict[str, Any], **_: Any) -> KvCustomerGroup:
        return KvCustomerGroup(**v)


class WebhookSchema(KvSchema):
    id = fields.Raw(required=True)
    type = fields.Str(load_default="")
    url = optional_text()
    is_active = fields.Bool(load_default=True, allow_none=True, data_key="isactive")

    @post_load
    def make(self, v: dict[str, Any], **_: Any) -> KvWebhook:
        ident = v["id"]
        ident = int(ident) if str(ident).isdigit() else str(ident)
        return KvWebhook(ident, (v.get("type") or "").lower(), v.get("url"), v.get("is_active") is not False)


class CreatedSchema(KvSchema):
    id = fields.Int(required=True)
    code = optional_text()

    @pre_load
    def unwrap(self, data: Any, **_: Any) -> Any:
        return data.get("data", data) if isinstance(data, dict) and isinstance(data.get("data"), dict) else data

    @post_load
    def make(self, v: dict[str, Any], **_: Any) -> KvCreated:
        return KvCreated(v["id"], v.get("code"))
