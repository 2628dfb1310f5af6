"""Customers both ways, matched by phone on both sides, created once, without loops.

For each customer the service keeps the fingerprint of the content it knows is on each side
(what it wrote there, or what came from there), over the fields both directions carry. A change
reported with exactly that content is our own write echoing back, or the same content pulled
again, and is dropped; a real edit has other content and goes through. Conflicts resolve by
modification time, to the second (Abaha stamps whole seconds; within one second the change
received later wins): both sides' changes of a linked customer share one version guard. A field
the other side does not know is never sent (absent, not null), so nothing is erased.
"""

from __future__ import annotations

import re
from contextlib import ExitStack
from datetime import datetime, timedelta
from typing import Any

import structlog

from adapters import clock
from adapters.errors import KiotVietRejected, PermanentError, TransientError
from schemas.abaha import AbahaCustomer, AbahaOrder
from schemas.customers import gender_word, local_phone, shared_fingerprint
from schemas.events import Event, Outcome, to_micros
from schemas.kiotviet import parse_kiotviet_datetime
from schemas.kiotviet_sales import KvCustomer, KvCustomerGroup
from workers.context import ShopContext
from workers.guard import guarded

log = structlog.get_logger(__name__)
KIOTVIET, ABAHA = "kiotviet", "abaha"
SETTLE_SECONDS = 60  # longer than a POST /customers can wait for its answer
ADOPT_WINDOW = timedelta(minutes=15)


Shared = tuple[Any, Any, Any, Any, Any, Any]  # name, phone, email, address, gender, birth date


def kiotviet_fields(c: KvCustomer) -> Shared:
    return c.name, c.contact_number, c.email, c.address, gender_word(c.gender), c.birth_date


def abaha_fields(c: AbahaCustomer) -> Shared:
    return c.name, c.phone, c.email, c.address, c.gender, c.birth_date


def kiotviet_fingerprint(c: KvCustomer) -> str:
    return shared_fingerprint(*kiotviet_fields(c))


def abaha_fingerprint(c: AbahaCustomer) -> str:
    return shared_fingerprint(*abaha_fields(c))


def after_write(held: Shared | None, written: Shared) -> str:
    """The content a side holds once a write of `written` is done: a field the write leaves out
    (absent, not null) keeps the side's own value. Its echo carries this, not what was written."""
    if held is None:
        return shared_fingerprint(*written)
    kept = (mine if mine is not None else theirs for mine, theirs in zip(written, held, strict=True))
    return shared_fingerprint(*kept)


def is_echo(ctx: ShopContext, side: str, customer_id: int, content: str, version: int) -> bool:
    """The change only carries what we know is on `side` already, or is the late echo of one of
    our writes there (stamped before it was made): nothing to write."""
    shop = ctx.connection.shop_id
    if ctx.links.has_content(shop, side, customer_id, content):
        log.info("customer.echo_dropped", side=side, customer_id=customer_id)
        return True
    if ctx.links.is_own_echo(shop, side, customer_id, content, version):
        log.info("customer.late_echo_dropped", side=side, customer_id=customer_id)
        return True
    return False


def apply_kiotviet_customer(event: Event, ctx: ShopContext) -> Outcome:
    """A KiotViet customer created or edited → the linked, matched or a new Abaha customer."""
    customer = KvCustomer.from_json(event.data)
    content = kiotviet_fingerprint(customer)
    if is_echo(ctx, KIOTVIET, customer.id, content, event.version_second):
        return Outcome.ECHO

    shop = ctx.connection.shop_id

    def write() -> None:
        # the guard orders the two sides to the second (Abaha's whole seconds); KiotViet's own
        # times order its changes exactly, so an earlier KiotViet edit of that second is stale
        applied = ctx.links.kiotviet_applied(shop, customer.id)
        if applied is not None and applied > event.version_micros:
            raise NewerApplied(f"KiotViet customer {customer.id} has a later KiotViet edit applied")
        write_customer_to_abaha(customer, group_ids(customer, ctx), ctx, event.version_second)
        ctx.links.record_kiotviet_applied(shop, customer.id, event.version_micros)

    try:
        return guarded(ctx, "customer", str(customer.id), event.version_second, content, write)
    except NewerApplied as newer:
        log.info("change.stale", kind="customer", entity_id=str(customer.id), why=str(newer))
        return Outcome.STALE


class NewerApplied(Exception):
    """The customer holds, or is about to receive, an edit newer than this change: nothing to write."""


class NewerOnTheOtherSide(NewerApplied):
    """The other side holds an edit of the customer newer than this change (its event is on its
    way, and will win there)."""

    def __init__(self, side: str, customer_id: int) -> None:
        super().__init__(f"{side} customer {customer_id} was edited after this change")
        self.side, self.customer_id = side, customer_id


def check_not_newer_on_abaha(
    customer: KvCustomer, abaha_id: int, version: int, ctx: ShopContext
) -> AbahaCustomer | None:
    """A KiotViet change applied late must not overwrite an edit made on Abaha after it; answers
    the customer as Abaha holds it (None when its phone does not find it)."""
    phone = local_phone(customer.contact_number)
    if not phone:
        return None
    held = next((c for c in ctx.abaha.customers_by_phone(phone) if c.id == abaha_id), None)
    if held is not None and held.updated_at:
        check_not_newer(ctx, ABAHA, abaha_id, abaha_fingerprint(held), to_micros(held.updated_at), version)
    return held


def check_not_newer_in_kiotviet(kv_id: int, version: int, ctx: ShopContext) -> KvCustomer | None:
    """An Abaha change applied late must not overwrite an edit made in KiotViet after it; answers
    the customer as KiotViet holds it."""
    held = ctx.kiotviet.customer(kv_id)
    if held is not None and held.modified_date:
        stamped = int(parse_kiotviet_datetime(held.modified_date).timestamp() * 1_000_000)
        check_not_newer(ctx, KIOTVIET, kv_id, kiotviet_fingerprint(held), stamped, version)
    return held


def check_not_newer(ctx: ShopContext, side: str, customer_id: int, content: str, stamped: int, version: int) -> None:
    """When `side` holds content we neither know nor wrote, stamped in a later second than the
    change's version, the change is older than what someone did there: stale."""
    if stamped // 1_000_000 * 1_000_000 <= version:
        return
    shop = ctx.connection.shop_id
    if ctx.links.has_content(shop, side, customer_id, content) or ctx.links.is_own_echo(
        shop, side, customer_id, content, stamped
    ):
        return  # what it holds came from us, or is what we know is there
    raise NewerOnTheOtherSide(side, customer_id)


def write_customer_to_abaha(customer: KvCustomer, groups: list[int], ctx: ShopContext, version: int) -> None:
    """Create or update the Abaha customer of this KiotViet one, expecting its echo: the one
    linked, else the one Abaha has with this phone (so the first sync of a shop whose website
    already had its customers duplicates none), else a new one."""
    shop = ctx.connection.shop_id
    content = kiotviet_fingerprint(customer)
    with ctx.state.entity_lock(shop, "phone", local_phone(customer.contact_number) or f"kv:{customer.id}"):
        linked_id = ctx.links.abaha_customer_for(shop, customer.id)
        if linked_id is not None:
            held = check_not_newer_on_abaha(customer, linked_id, version, ctx)
        else:
            held = abaha_match(customer, ctx)
            if held is not None and held.updated_at:  # matched by phone: its newer edit is not undone either
                check_not_newer(ctx, ABAHA, held.id, abaha_fingerprint(held), to_micros(held.updated_at), version)
        abaha_id = linked_id or (held.id if held else None)
        after = after_write(abaha_fields(held) if held else None, kiotviet_fields(customer))
        body = present({
            "abaha_id": abaha_id, "code": customer.code, "name": customer.name, "phone": customer.contact_number,
            "email": customer.email, "gender": gender_word(customer.gender),
            "birth_date": (customer.birth_date or "")[:10] or None, "address": customer.address,
            "source_modified_at": customer.modified_date,
        })  # fmt: skip
        body["group_kv_ids"] = groups
        with ExitStack() as expecting:
            expecting.enter_context(ctx.links.expecting_content(shop, KIOTVIET, customer.id, content))
            if abaha_id is not None:
                expecting.enter_context(ctx.links.expecting_content(shop, ABAHA, abaha_id, after))
            with ctx.links.writing(shop, ABAHA, abaha_id, after):
                linked = ctx.abaha.put_customer(customer.id, body)
        ctx.links.remember_content(shop, ABAHA, linked, after)
        if abaha_id is None:
            ctx.links.wrote_content(shop, ABAHA, linked, after)
        ctx.links.link_customer(shop, customer.id, linked)


def abaha_match(customer: KvCustomer, ctx: ShopContext) -> AbahaCustomer | None:
    """The Abaha customer with this phone that is not linked to another KiotViet customer (the
    lowest id when there are several)."""
    phone = local_phone(customer.contact_number)
    if not phone:
        return None
    shop = ctx.connection.shop_id
    free = [
        c
        for c in ctx.abaha.customers_by_phone(phone)
        if c.kv_id in (None, customer.id) and ctx.links.kv_customer_for(shop, c.id) in (None, customer.id)
    ]
    matched = min(free, key=lambda c: c.id, default=None)
    if matched is not None:
        log.info("customer.matched_on_abaha", kv_customer_id=customer.id, abaha_customer_id=matched.id)
    return matched


def apply_abaha_customer(event: Event, ctx: ShopContext) -> Outcome:
    """An Abaha customer created or edited → KiotViet (matched by phone first), then linked."""
    customer = AbahaCustomer(**event.data)
    shop, content = ctx.connection.shop_id, abaha_fingerprint(customer)
    if is_echo(ctx, ABAHA, customer.id, content, event.version_second):
        return Outcome.ECHO
    with ctx.state.entity_lock(shop, "abaha_customer", str(customer.id)):
        kv_id = customer.kv_id or ctx.links.kv_customer_for(shop, customer.id)
        linked, created, matched = kv_id is not None, False, None
        if kv_id is None:
            # the same lock as an order's customer: a new phone becomes one KiotViet customer
            with ctx.state.entity_lock(shop, "phone", local_phone(customer.phone) or f"abaha:{customer.id}"):
                matched = customer_by_phone(customer.phone, ctx)
                kv_id = matched.id if matched else None
                if kv_id is None:
                    kv_id, created = create_kiotviet_customer(customer, content, ctx), True
        kv = kv_id
        if linked:
            held = as_abaha_holds_it(customer, kv, event.version_second, content, ctx)
            if held is None:
                return Outcome.STALE
            customer, content = held, abaha_fingerprint(held)
        version = max(event.version_second, to_second(customer.updated_at))

        def write() -> None:
            with ctx.links.expecting_content(shop, ABAHA, customer.id, content):
                # linked or just matched by phone, a newer edit in KiotViet is not undone
                held = check_not_newer_in_kiotviet(kv, version, ctx) if not created else None
                if not created:
                    after = after_write(kiotviet_fields(held) if held else None, abaha_fields(customer))
                    with ctx.links.expecting_content(shop, KIOTVIET, kv, after), \
                            ctx.links.writing(shop, KIOTVIET, kv, after):  # fmt: skip
                        ctx.kiotviet.update_customer(kv, kiotviet_customer_body(customer, ctx))
                link_on_abaha(customer, kv, ctx)

        try:
            return guarded(ctx, "customer", str(kv), version, content, write)
        except NewerApplied as newer:
            log.info("change.stale", kind="customer", entity_id=str(kv), why=str(newer))
            return Outcome.STALE


def as_abaha_holds_it(
    customer: AbahaCustomer, kv_id: int, version: int, content: str, ctx: ShopContext
) -> AbahaCustomer | None:
    """The change to apply: this one, or, when a change of the same second with other content was
    applied already (Abaha stamps whole seconds: a retry, a late redelivery), the customer as
    Abaha holds it now (SPEC §5); None when that is what was applied."""
    shop = ctx.connection.shop_id
    applied = ctx.pending.applied(shop, "customer", [str(kv_id)])[str(kv_id)]
    if applied is None or applied.order != version or applied.fingerprint == content or not customer.phone:
        return customer
    held = next((c for c in ctx.abaha.customers_by_phone(customer.phone) if c.id == customer.id), None)
    if held is None or to_second(held.updated_at) < version:
        return customer
    if abaha_fingerprint(held) == applied.fingerprint:
        log.info("change.stale", kind="customer", entity_id=str(kv_id), why="Abaha holds what was applied")
        return None
    return held


def to_second(stamp: str | None) -> int:
    """An ISO time to the second, in microseconds (how customer versions compare); 0 without one."""
    return to_micros(stamp) // 1_000_000 * 1_000_000 if stamp else 0


def create_kiotviet_customer(customer: AbahaCustomer, content: str, ctx: ShopContext) -> int:
    """Create it exactly once: the intent (with the code the new customer gets) is recorded
    before the call; after a failure that may have made it, a retry finds it by that code (or
    the marker in its comments) and adopts it instead of making another."""
    shop = ctx.connection.shop_id
    intent = ctx.links.customer_intent(shop, customer.id)
    if intent is not None:
        found = adopt_customer(customer, intent, ctx)
        if found is not None:
            return linked_new_customer(customer, found, content, ctx)
        age = (clock.now() - datetime.fromisoformat(intent["since"])).total_seconds()
        if age < SETTLE_SECONDS:
            raise TransientError(f"Abaha customer {customer.id}: an attempt to create it in KiotViet began "
                                 f"{int(age)} s ago; looking again later", SETTLE_SECONDS - age)  # fmt: skip
    code = f"KHAB{customer.id}"
    ctx.links.record_customer_intent(shop, customer.id, code)
    body = {**kiotviet_customer_body(customer, ctx), "code": code, "comments": marker(customer.id)}
    try:
        created = ctx.kiotviet.create_customer(body)
    except KiotVietRejected as exc:
        found = adopt_customer(customer, {"code": code, "since": clock.now().isoformat()}, ctx)
        if found is not None:  # "code already exists": an earlier attempt made it after all
            return linked_new_customer(customer, found, content, ctx)
        ctx.links.clear_customer_intent(shop, customer.id)
        raise PermanentError(f"KiotViet refused to create Abaha customer {customer.id} ({customer.name}): "
                             f"{exc.kiotviet_message or exc}") from exc  # fmt: skip
    log.info("customer.created_in_kiotviet", kv_customer_id=created.id, abaha_customer_id=customer.id)
    return linked_new_customer(customer, created.id, content, ctx)


def linked_new_customer(customer: AbahaCustomer, kv_id: int, content: str, ctx: ShopContext) -> int:
    """Link at once: a retry then updates the customer instead of making another."""
    shop = ctx.connection.shop_id
    ctx.links.remember_content(shop, KIOTVIET, kv_id, content)
    ctx.links.wrote_content(shop, KIOTVIET, kv_id, content)
    ctx.links.link_customer(shop, kv_id, customer.id)
    ctx.links.clear_customer_intent(shop, customer.id)
    return kv_id


def adopt_customer(customer: AbahaCustomer, intent: dict[str, Any], ctx: ShopContext) -> int | None:
    """The KiotViet customer an earlier attempt made: by its code, else by the marker."""
    by_code = [c.id for c in ctx.kiotviet.customers_by_code(intent["code"]) if c.code == intent["code"]]
    if by_code:
        return min(by_code)
    since = (datetime.fromisoformat(intent["since"]) - ADOPT_WINDOW).isoformat()
    offset: int | None = 0
    while offset is not None:
        page = ctx.kiotviet.customers_page(offset, since=since, by_modified=True)
        for found in page.items:
            if marker(customer.id) in (found.comments or ""):
                return found.id
        offset = page.next_offset(offset)
    return None


def marker(abaha_id: int) -> str:
    return f"[abaha:{abaha_id}]"


def link_on_abaha(customer: AbahaCustomer, kv_id: int, ctx: ShopContext) -> None:
    """Link the Abaha customer to its KiotViet one without undoing an edit made on Abaha since the
    change: one that carries the link already is not written (the change came from there); else
    the link is written with the content Abaha holds now when that is a newer edit, not ours (its
    own event brings it to KiotViet), and with the change's content otherwise."""
    shop = ctx.connection.shop_id
    if customer.kv_id != kv_id:
        held = newer_edit_on_abaha(customer, ctx)
        if held is not None:
            ctx.abaha.put_customer(kv_id, abaha_body(held))  # not ours: its event must not be taken for an echo
        else:
            with ctx.links.writing(shop, ABAHA, customer.id, abaha_fingerprint(customer)):
                ctx.abaha.put_customer(kv_id, abaha_body(customer))
    ctx.links.link_customer(shop, kv_id, customer.id)


def newer_edit_on_abaha(customer: AbahaCustomer, ctx: ShopContext) -> AbahaCustomer | None:
    """The customer as Abaha holds it, when that is an edit made after this change and not by us."""
    if not customer.phone:
        return None
    held = next((c for c in ctx.abaha.customers_by_phone(customer.phone) if c.id == customer.id), None)
    if held is None or to_second(held.updated_at) < to_second(customer.updated_at):
        return None
    content = abaha_fingerprint(held)
    if content == abaha_fingerprint(customer):
        return None
    if ctx.links.is_own_echo(ctx.connection.shop_id, ABAHA, customer.id, content, to_second(held.updated_at)):
        return None
    return held


def abaha_body(customer: AbahaCustomer) -> dict[str, Any]:
    return present({"abaha_id": customer.id, "name": customer.name, "phone": customer.phone, "email": customer.email,
                    "gender": customer.gender, "birth_date": customer.birth_date, "address": customer.address,
                    "source_modified_at": customer.updated_at})  # fmt: skip


def kiotviet_customer_body(customer: AbahaCustomer, ctx: ShopContext) -> dict[str, Any]:
    """What Abaha knows of the customer, in KiotViet's words; what it does not know is left out."""
    location = " - ".join(part for part in (customer.province, customer.district) if part) or None
    gender = None if customer.gender is None else customer.gender == "male"
    return present({"name": customer.name, "contactNumber": customer.phone, "email": customer.email,
                    "address": customer.address, "gender": gender, "birthDate": customer.birth_date,
                    "locationName": location, "wardName": customer.ward,
                    "branchId": ctx.connection.branch_id})  # fmt: skip


def present(body: dict[str, Any]) -> dict[str, Any]:
    """Only the fields with a value: a null would erase what the other side holds."""
    return {key: value for key, value in body.items() if value is not None}


def customer_by_phone(phone: str | None, ctx: ShopContext) -> KvCustomer | None:
    """The KiotViet customer with this phone number, so no duplicate is made (the lowest id
    when KiotViet has several). Several Abaha customers may come to one KiotViet customer, as
    their orders do."""
    local = local_phone(phone)
    if not local:
        return None
    found = [m for m in ctx.kiotviet.customers_by_phone(local) if local_phone(m.contact_number) == local]
    return min(found, key=lambda m: m.id, default=None)


def kiotviet_customer_for_order(order: AbahaOrder, ctx: ShopContext) -> int | None:
    """The KiotViet customer of an Abaha order: matched by phone, or created (once per phone,
    even with orders of a new customer arriving together)."""
    buyer = order.customer or order.shipping_address
    if buyer is None or not local_phone(buyer.phone):
        return None  # KiotViet's walk-in customer
    shop = ctx.connection.shop_id
    with ctx.state.entity_lock(shop, "phone", local_phone(buyer.phone)):
        found = customer_by_phone(buyer.phone, ctx)
        if found is not None:
            return found.id
        location = " - ".join(part for part in (buyer.province, buyer.district) if part) or None
        body = present(
            {
                "name": buyer.name,
                "contactNumber": buyer.phone,
                "address": buyer.address,
                "locationName": location,
                "wardName": buyer.ward,
                "branchId": ctx.connection.branch_id,
            }
        )
        kv_id = ctx.kiotviet.create_customer(body).id
    content = shared_fingerprint(buyer.name, buyer.phone, None, buyer.address, None, None)
    ctx.links.remember_content(shop, KIOTVIET, kv_id, content)
    ctx.links.wrote_content(shop, KIOTVIET, kv_id, content)
    return kv_id


def group_ids(customer: KvCustomer, ctx: ShopContext) -> list[int]:
    """The customer's KiotViet groups, each put on Abaha: as a list page carried them, or read
    from the customer's detail (webhooks do not carry them)."""
    detail = customer if customer.group_ids is not None or customer.groups is not None else None
    detail = detail or ctx.kiotviet.customer(customer.id)
    if detail is None or (not detail.group_ids and not detail.groups):
        return []
    if "customer_groups" not in ctx.memo:  # one read of the list for a whole batch
        ctx.memo["customer_groups"] = {g.id: g for g in ctx.kiotviet.customer_groups()}
    groups: dict[int, KvCustomerGroup] = ctx.memo["customer_groups"]
    wanted = list(detail.group_ids or ())
    if not wanted:
        listed = [n.strip() for n in re.split(r"[|,]", detail.groups or "")]
        wanted = [gid for gid, g in groups.items() if g.name in listed]
    for gid in wanted:
        if gid in groups:
            ctx.abaha.put_customer_group(gid, {"name": groups[gid].name, "discount": groups[gid].discount})
    return [int(g) for g in wanted]
