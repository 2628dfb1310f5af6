"""KiotViet's bodies (webhooks and REST answers) parsed into frozen dataclasses.

Webhook keys are PascalCase with exceptions (`isActive`, `__type`), REST keys camelCase:
every key is lower-cased before loading, so one schema reads both.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, pre_load

VIETNAM = timezone(timedelta(hours=7), "Asia/Ho_Chi_Minh")
_FRACTION = re.compile(r"(\.\d{6})\d+")


def lower_keys(value: Any) -> Any:
    """Lower-case every dict key, recursively, dropping .NET's `__type`."""
    if isinstance(value, dict):
        return {str(k).lower(): lower_keys(v) for k, v in value.items() if k != "__type"}
    if isinstance(value, list):
        return [lower_keys(item) for item in value]
    return value


def parse_kiotviet_datetime(text: str) -> datetime:
    """Parse KiotViet's dates: up to seven fractional digits, naive means Vietnam time."""
    moment = datetime.fromisoformat(_FRACTION.sub(r"\1", text.strip().replace("Z", "+00:00")))
    return moment if moment.tzinfo else moment.replace(tzinfo=VIETNAM)


class KvDateTime(fields.Field[str]):
    """A KiotViet timestamp, loaded as ISO 8601 text with its offset."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str):
            raise ValidationError("not a date")
        try:
            return parse_kiotviet_datetime(value).isoformat()
        except ValueError as exc:
            raise ValidationError(f"unreadable date {value!r}") from exc


class Money(fields.Field[int]):
    """A VND amount: whole numbers in practice, sometimes sent as 150000.0."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        try:
            amount = float(value)
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"not an amount: {value!r}") from exc
        if not math.isfinite(amount):
            raise ValidationError(f"not an amount: {value!r}")
        return round(amount)


class ImageList(fields.Field[tuple[str, ...]]):
    """Images as strings (detail, webhooks) or as [{"image": url}] (the list doc)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> tuple[str, ...]:
        if not isinstance(value, list):
            return ()
        urls = [item.get("image") if isinstance(item, dict) else item for item in value]
        return tuple(url for url in urls if isinstance(url, str) and url)


class KvSchema(Schema):
    """Base: case-insensitive keys, unknown keys ignored."""

    class Meta:
        unknown = EXCLUDE

    @pre_load
    def lower(self, data: Any, **_: Any) -> Any:
        return lower_keys(data)


@dataclass(frozen=True)
class Inventory:
    branch_id: int
    on_hand: float
    reserved: float


@dataclass(frozen=True)
class Attribute:
    name: str
    value: str


@dataclass(frozen=True)
class ProductPrice:
    price_book_id: int
    price: int


@dataclass(frozen=True)
class KvProduct:
    id: int
    code: str | None
    barcode: str | None
    name: str | None
    full_name: str | None
    category_id: int | None
    allows_sale: bool | None
    is_active: bool | None
    base_price: int | None
    unit: str | None
    weight: float | None
    description: str | None
    modified_date: str | None
    attributes: tuple[Attribute, ...] | None
    inventories: tuple[Inventory, ...] | None
    images: tuple[str, ...] | None
    has_variants: bool | None = None
    # a variant's master row, a unit row's base row and how many base units it holds; None when
    # the row has none (or, with links_given False, when the body did not say)
    master_product_id: int | None = None
    master_unit_id: int | None = None
    conversion_value: float | None = None
    links_given: bool = True
    price_books: tuple[ProductPrice, ...] | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> KvProduct:
        """Rebuild from the JSON form carried by an event."""
        values = dict(data)
        for key, kind in (("attributes", Attribute), ("inventories", Inventory), ("price_books", ProductPrice)):
            if values.get(key) is not None:
                values[key] = tuple(kind(**item) for item in values[key])
        if values.get("images") is not None:
            values["images"] = tuple(values["images"])
        return cls(**values)

    @property
    def master_id(self) -> int | None:
        """The variant group's master, when this row is a variant of another row."""
        return self.master_product_id if self.master_product_id not in (None, 0, self.id) else None

    @property
    def base_id(self) -> int | None:
        """The base-unit row, when this row is another unit of it (a case of 24 cans)."""
        return self.master_unit_id if self.master_unit_id not in (None, 0, self.id) else None

    def inventory_at(self, branch_id: int) -> Inventory | None:
        return next((i for i in self.inventories or () if i.branch_id == branch_id), None)


@dataclass(frozen=True)
class KvStockRow:
    """A `/productOnHands` row: the product's stock at every branch and when it last changed."""

    product_id: int
    modified_date: str | None
    inventories: tuple[Inventory, ...]

    def at(self, branch_id: int) -> Inventory | None:
        return next((i for i in self.inventories if i.branch_id == branch_id), None)


@dataclass(frozen=True)
class KvStock:
    product_id: int
    product_code: str | None
    branch_id: int
    on_hand: float
    reserved: float
    modified_date: str | None


@dataclass(frozen=True)
class KvCategory:
    id: int
    name: str | None
    parent_id: int | None
    modified_date: str | None


@dataclass(frozen=True)
class KvPriceBook:
    id: int
    name: str | None
    is_active: bool | None
    modified_date: str | None


@dataclass(frozen=True)
class KvPrice:
    price_book_id: int
    product_id: int
    price: int


class InventorySchema(KvSchema):
    branch_id = fields.Int(required=True, data_key="branchid")
    on_hand = fields.Float(load_default=0.0, data_key="onhand", allow_none=True)
    reserved = fields.Float(load_default=0.0, allow_none=True)

    @post_load
    def make(self, v: dict[str, Any], **_: Any) -> Inventory:
        return Inventory(v["branch_id"], v.get("on_hand") or 0.0, v.get("reserved") or 0.0)


class AttributeSchema(KvSchema):
    name = fields.Str(load_default="", data_key="attributename", allow_none=True)
    value = fields.Str(load_default="", data_key="attributevalue", allow_none=True)

    @post_load
    def make(self, v: dict[str, Any], **_: Any) -> Attribute:
        return Attribute(v.get("name") or "", v.get("value") or "")


def optional_text(key: str | None = None) -> fields.Str:
    return fields.Str(load_default=None, allow_none=True, data_key=key)


def optional_int(key: str | None = None) -> fields.Int:
    return fields.Int(load_default=None, allow_none=True, data_key=key)


def optional_bool(key: str | None = None) -> fields.Bool:
    return fields.Bool(load_default=None, allow_none=True, data_key=key)


class ProductPriceSchema(KvSchema):
    price_book_id = fields.Int(required=True, data_key="pricebookid")
    price = Money(required=True)

    @post_load
    def make(self, v: dict[str, Any], **_: Any) -> ProductPrice:
        return ProductPrice(**v)


LINK_KEYS = ("masterproductid", "masterunitid")


class ProductSchema(KvSchema):
    id = fields.Int(required=True)
    code = optional_text()
    barcode = optional_text()
    name = optional_text()
    full_name = optional_text("fullname")
    category_id = optional_int("categoryid")
    allows_sale = optional_bool("allowssale")
    is_active = optional_bool("isactive")
    base_price = Money(load_default=None, allow_none=True, data_key="baseprice")
    unit = optional_text()
    weight = fields.Float(load_default=None, allow_none=True)
    description = optional_text()
    modified_date = KvDateTime(load_default=None, allow_none=True, data_key="modifieddate")
    attributes = fields.List(fields.Nested(AttributeSchema), load_default=None, allow_none=True)
    inventories = fields.List(fields.Nested(InventorySchema), load_default=None, allow_none=True)
    images = ImageList(load_default=None, allow_none=True)
    has_variants = optional_bool("hasvariants")
    master_product_id = optional_int("masterproductid")
    master_unit_id = optional_int("masterunitid")
    conversion_value = fields.Float(load_default=None, allow_none=True, data_key="conversionvalue")
    price_books = fields.List(fields.Nested(ProductPriceSchema), load_default=None, allow_none=True,
                              data_key="pricebooks")  # fmt: skip
    links_given = fields.Bool(load_default=False, data_key="_links_given")

    @pre_load
    def links(self, data: Any, **_: Any) -> Any:
        # absent linking keys say nothing (a thin webhook body); present ones, even null, say
        # (hooks run in name order, so this one may see keys before they are lower-cased)
        if isinstance(data, dict):
            data = {**data, "_links_given": any(str(key).lower() in LINK_KEYS for key in data)}
        return data

    @post_load
    def make(self, v: dict[str, Any], **_: Any) -> KvProduct:
        for key in ("attributes", "inventories", "price_books"):
            if v.get(key) is not None:
                v[key] = tuple(v[key])
        return KvProduct(**v)


class StockRowSchema(KvSchema):
    product_id = fields.Int(required=True, data_key="id")
    modified_date = KvDateTime(load_default=None, allow_none=True, data_key="modifieddate")
    inventories = fields.List(fields.Nested(InventorySchema), load_default=list)

    @post_load
    def make(self, v: dict[str, Any], **_: Any) -> KvStockRow:
        return KvStockRow(v["product_id"], v.get("modified_date"), tuple(v["inventories"]))


class StockSchema(KvSchema):
    product_id = fields.Int(required=True, data_key="productid")
    product_code = optional_text("productcode")
    branch_id = fields.Int(required=True, data_key="branchid")
    on_hand = fields.Float(load_default=0.0, allow_none=True, data_key="onhand")
    reserved = fields.Float(load_default=0.0, allow_none=True)
    modified_date = KvDateTime(load_default=None, allow_none=True, data_key="modifieddate")

    @pre_load
    def product_id_from_id(self, data: Any, **_: Any) -> Any:
        # the REST stock list (`/productOnHands`) names the product `id`
        if isinstance(data, dict) and "productid" not in data and "id" in data:
            data = {**data, "productid": data["id"]}
        return data

    @post_load
    def make(self, v: dict[str, Any], **_: Any) -> KvStock:
        v["on_hand"] = v.get("on_hand") or 0.0
        v["reserved"] = v.get("reserved") or 0.0
        return KvStock(**v)


class CategorySchema(KvSchema):
    id = fields.Int(required=True)
    name = optional_text()
    parent_id = optional_int("parentid")
    modified_date = KvDateTime(load_default=None, allow_none=True, data_key="modifieddate")

    @pre_load
    def rest_names(self, data: Any, **_: Any) -> Any:
        # REST says categoryId / categoryName where the webhook says Id / Name
        if isinstance(data, dict):
            data = dict(data)
            data.setdefault("id", data.get("categoryid"))
            data.setdefault("name", data.get("categoryname"))
        return data

    @post_load
    def make(self, v: dict[str, Any], **_: Any) -> KvCategory:
        return KvCategory(**v)


class PriceBookSchema(KvSchema):
    id = fields.Int(required=True)
    name = optional_text()
    is_active = optional_bool("isactive")
    modified_date = KvDateTime(load_default=None, allow_none=True, data_key="modifieddate")

    @post_load
    def make(self, v: dict[str, Any], **_: Any) -> KvPriceBook:
        return KvPriceBook(**v)


class PriceSchema(KvSchema):
    price_book_id = fields.Int(required=True, data_key="pricebookid")
    product_id = fields.Int(required=True, data_key="productid")
    price = Money(required=True)

    @post_load
    def make(self, v: dict[str, Any], **_: Any) -> KvPrice:
        return KvPrice(**v)


def read_removed_ids(page: dict[str, Any]) -> list[int]:
    """Ids deleted since `lastModifiedFrom`, under any of the three spellings KiotViet uses."""
    lowered = lower_keys(page)
    ids: list[int] = []
    for key in ("removedids", "removeid", "removeids"):
        ids.extend(int(i) for i in lowered.get(key) or [])
    return ids
