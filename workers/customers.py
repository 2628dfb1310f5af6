"""Customers both ways, matched by phone, without loops.

For each customer the service keeps the fingerprint of the content it knows is on each side
(what it wrote there, or what came from there). A change reported with exactly that content is
our own write echoing back, or the same content pulled again, and is dropped; a real edit has
other content and goes through. Conflicts resolve by modification time: both sides' changes of
a linked customer share one version guard.
"""

from __future__ import annotations

import hashlib
import json
import re
from contextlib import ExitStack
from typing import Any

import structlog

from schemas.abaha import AbahaCustomer, AbahaOrder
from schemas.events import Event
from schemas.kiotviet import KvCustomer
from workers.catalog import guarded
from workers.context import ShopContext

log = structlog.get_logger(__name__)
ECHO = "echo"
KIOTVIET, ABAHA = "kiotviet", "abaha"


def local_phone(phone: Any) -> str:
    """A Vietnamese number in one form: digits only, +84 / 84 written as the leading 0."""
    digits = re.sub(r"\D", "", str(phone or ""))
    return "0" + digits[2:] if digits.startswith("84") and len(digits) in (11, 12) else digits


def fingerprint(name: Any, phone: Any, email: Any, address: Any, gender: Any, birth_date: Any,
                location: Any = None, ward: Any = None) -> str:  # fmt: skip
    """The content both sides share, normalized so that the same customer hashes the same."""
    fields = [
        (name or "").strip(),
        local_phone(phone),
        (email or "").strip().lower(),
        (address or "").strip(),
        gender or "",
        (birth_date or "")[:10],
        (location or "").strip(),
        (ward or "").strip(),
    ]
    return hashlib.sha256(json.dumps(fields, ensure_ascii=False).encode()).hexdigest()[:32]


def _gender_word(male: bool | None) -> str | None:
    return None if male is None else ("male" if male else "female")


def _location(province: str | None, district: str | None) -> str | None:
    return " - ".join(part for part in (province, district) if part) or None


def kiotviet_fingerprint(c: KvCustomer) -> str:
    return fingerprint(c.name, c.contact_number, c.email, c.address, _gender_word(c.gender), c.birth_date,
                       c.location_name, c.ward_name)  # fmt: skip


def abaha_fingerprint(c: AbahaCustomer) -> str:
    return fingerprint(c.name, c.phone, c.email, c.address, c.gender, c.birth_date,
                       _location(c.province, c.district), c.ward)  # fmt: skip


def is_echo(ctx: ShopContext, side: str, customer_id: int, content: str) -> bool:
    """The change only carries what we know is on `side` already: nothing to write."""
    if not ctx.links.has_content(ctx.connection.shop_id, side, customer_id, content):
        return False
    log.info("customer.echo_dropped", side=side, customer_id=customer_id)
    return True


def apply_kiotviet_customer(event: Event, ctx: ShopContext) -> str:
    """A KiotViet customer created or edited → the linked (or a new) Abaha customer."""
    customer = KvCustomer(**event.data)
    if is_echo(ctx, KIOTVIET, customer.id, kiotviet_fingerprint(customer)):
        return ECHO

    def write() -> None:
        write_customer_to_abaha(customer, group_ids(customer.id, ctx), ctx, event.version)

    return guarded(ctx, event, "customer", str(customer.id), write)


def write_customer_to_abaha(customer: KvCustomer, groups: list[int], ctx: ShopContext, fallback_version: str) -> None:
    """Create or update the Abaha customer linked to this KiotViet one, expecting its echo."""
    shop = ctx.connection.shop_id
    content = kiotviet_fingerprint(customer)
    abaha_id = ctx.links.abaha_customer_for(shop, customer.id)
    body: dict[str, Any] = {
        "code": customer.code, "name": customer.name, "phone": customer.contact_number,
        "email": customer.email, "gender": _gender_word(customer.gender),
        "birth_date": (customer.birth_date or "")[:10] or None, "address": customer.address,
        "group_kv_ids": groups, "source_modified_at": customer.modified_date or fallback_version,
    }  # fmt: skip
    if abaha_id is not None:
        body["abaha_id"] = abaha_id
    with ExitStack() as expecting:
        expecting.enter_context(ctx.links.expecting_content(shop, KIOTVIET, customer.id, content))
        if abaha_id is not None:
            expecting.enter_context(ctx.links.expecting_content(shop, ABAHA, abaha_id, content))
        linked = ctx.abaha.put_customer(customer.id, body)
    ctx.links.remember_content(shop, ABAHA, linked, content)
    ctx.links.link_customer(shop, customer.id, linked)


def apply_abaha_customer(event: Event, ctx: ShopContext) -> str:
    """An Abaha customer created or edited → KiotViet (matched by phone first), then linked."""
    customer = AbahaCustomer(**event.data)
    shop, content = ctx.connection.shop_id, abaha_fingerprint(customer)
    if is_echo(ctx, ABAHA, customer.id, content):
        return ECHO
    with ctx.state.entity_lock(shop, "abaha_customer", str(customer.id)):
        kv_id = customer.kv_id or ctx.links.kv_customer_for(shop, customer.id)
        created = False
        if kv_id is None:
            # the same lock as an order's customer: a new phone becomes one KiotViet customer
            with ctx.state.entity_lock(shop, "phone", local_phone(customer.phone) or f"abaha:{customer.id}"):
                kv_id = find_by_phone(customer.phone, ctx)
                if kv_id is None:
                    kv_id, created = create_kiotviet_customer(customer, content, ctx), True

        def write() -> None:
            with ctx.links.expecting_content(shop, ABAHA, customer.id, content):
                if not created:
                    with ctx.links.expecting_content(shop, KIOTVIET, kv_id, content):
                        ctx.kiotviet.update_customer(kv_id, kiotviet_customer_body(customer, ctx))
                link_on_abaha(customer, kv_id, ctx)

        return guarded(ctx, event, "customer", str(kv_id), write)


def create_kiotviet_customer(customer: AbahaCustomer, content: str, ctx: ShopContext) -> int:
    """Create it, and link it at once: a retry then updates it instead of making another."""
    shop = ctx.connection.shop_id
    created = ctx.kiotviet.create_customer(kiotviet_customer_body(customer, ctx))
    kv_id = int(created["id"])
    ctx.links.remember_content(shop, KIOTVIET, kv_id, content)
    ctx.links.link_customer(shop, kv_id, customer.id)
    log.info("customer.created_in_kiotviet", kv_customer_id=kv_id, abaha_customer_id=customer.id)
    return kv_id


def link_on_abaha(customer: AbahaCustomer, kv_id: int, ctx: ShopContext) -> None:
    body = {"abaha_id": customer.id, "name": customer.name, "phone": customer.phone, "email": customer.email,
            "gender": customer.gender, "birth_date": customer.birth_date, "address": customer.address,
            "source_modified_at": customer.updated_at}  # fmt: skip
    ctx.abaha.put_customer(kv_id, body)
    ctx.links.link_customer(ctx.connection.shop_id, kv_id, customer.id)


def kiotviet_customer_body(customer: AbahaCustomer, ctx: ShopContext) -> dict[str, Any]:
    location = _location(customer.province, customer.district)
    gender = None if customer.gender is None else customer.gender == "male"
    return {"name": customer.name, "contactNumber": customer.phone, "email": customer.email,
            "address": customer.address, "gender": gender, "birthDate": customer.birth_date,
            "locationName": location or None, "wardName": customer.ward,
            "branchId": ctx.connection.branch_id}  # fmt: skip


def find_by_phone(phone: str | None, ctx: ShopContext) -> int | None:
    """The KiotViet customer with this phone number, so no duplicate is made."""
    local = local_phone(phone)
    if not local:
        return None
    for match in ctx.kiotviet.customers_by_phone(local):
        if local_phone(match.get("contactnumber")) == local:
            return int(match["id"])
    return None


def kiotviet_customer_for_order(order: AbahaOrder, ctx: ShopContext) -> int | None:
    """The KiotViet customer of an Abaha order: matched by phone, or created (once per phone,
    even with orders of a new customer arriving together)."""
    buyer = order.customer or order.shipping_address
    if buyer is None or not local_phone(buyer.phone):
        return None  # KiotViet's walk-in customer
    shop = ctx.connection.shop_id
    with ctx.state.entity_lock(shop, "phone", local_phone(buyer.phone)):
        found = find_by_phone(buyer.phone, ctx)
        if found is not None:
            return found
        body = {"name": buyer.name, "contactNumber": buyer.phone, "address": buyer.address,
                "locationName": _location(buyer.province, buyer.district), "wardName": buyer.ward,
                "branchId": ctx.connection.branch_id}  # fmt: skip
        kv_id = int(ctx.kiotviet.create_customer(body)["id"])
    content = fingerprint(buyer.name, buyer.phone, None, buyer.address, None, None,
                          _location(buyer.province, buyer.district), buyer.ward)  # fmt: skip
    ctx.links.remember_content(shop, KIOTVIET, kv_id, content)
    return kv_id


def group_ids(kv_customer_id: int, ctx: ShopContext) -> list[int]:
    """The customer's KiotViet groups, each put on Abaha (webhooks do not carry them)."""
    detail = ctx.kiotviet.customer(kv_customer_id)
    wanted = detail.get("groupids")
    names = detail.get("groups")
    if not wanted and not names:
        return []
    groups = {int(g["id"]): g for g in ctx.kiotviet.customer_groups()}
    if not wanted:
        listed = [n.strip() for n in re.split(r"[|,]", names)] if isinstance(names, str) else []
        wanted = [gid for gid, g in groups.items() if g.get("name") in listed]
    for gid in wanted:
        if gid in groups:
            ctx.abaha.put_customer_group(
                gid, {"name": groups[gid].get("name"), "discount": groups[gid].get("discount")}
            )
    return [int(g) for g in wanted]
