"""Products, categories, price books and prices, KiotViet → Abaha, through the pending store and
the drain (fakeredis, fake peers, RQ's SimpleWorker)."""

from __future__ import annotations

import json
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from flask.testing import FlaskClient

from adapters.pending import Action, Release
from admin.failed import failed_changes
from schemas.events import Event
from schemas.kiotviet_webhook import normalize_delivery
from tests.conftest import ADMIN_TOKEN, BRANCH, SHOP
from tests.fakes import FakeAbaha, FakeKiotViet, stamp
from tests.helpers import queue_scheduled, sample
from wiring import Services
from workers.apply import BATCH_SECONDS

Drain = Callable[[], int]


def deliver(services: Services, name: str, edit: Callable[[dict[str, Any]], None] | None = None,
            delivery_id: str | None = None, items: list[dict[str, Any]] | None = None) -> list[Event]:  # fmt: skip
    """A KiotViet delivery from a sample body, accepted as the endpoint accepts it."""
    body = sample(f"kiotviet/{name}")
    if name == "product.update":  # a body that says the row is no variant and no unit row
        body["Notifications"][0]["Data"][0].update(MasterProductId=None, MasterUnitId=None)
    if delivery_id:
        body["Id"] = delivery_id
    if items is not None:
        body["Notifications"][0]["Data"] = items
    if edit:
        edit(body["Notifications"][0]["Data"][0])
    events = normalize_delivery(json.dumps(body).encode(), body, SHOP, "2026-11-30T08:00:00+00:00").events
    services.inbox.accept(SHOP, events, branch_id=BRANCH)
    return events


def product_item(**changes: Any) -> Callable[[dict[str, Any]], None]:
    return lambda item: item.update(changes)


def test_product_update_writes_the_product_with_the_branch_stock(
    services: Services, work_off: Drain, abaha: FakeAbaha, kiotviet: FakeKiotViet
) -> None:
    deliver(services, "product.update")
    work_off()
    body = abaha.products[3001]
    assert (body["sku"], body["price"], body["active"], body["category_kv_id"]) == ("SP000123", 150000, True, 101)
    assert body["stock"] == 13  # branch 11: onHand 15 − reserved 2; branch 12 is not ours
    assert body["attributes"] == [{"name": "MÀU SẮC", "value": "Trắng"}, {"name": "KÍCH THƯỚC", "value": "M"}]
    assert abaha.count("put_products") == 1
    assert services.state.counts(SHOP)["applied"] >= 1


def test_inactive_or_not_for_sale_products_are_hidden(services: Services, work_off: Drain, abaha: FakeAbaha) -> None:
    deliver(services, "product.update", product_item(isActive=False), "d1")
    deliver(services, "product.update", product_item(Id=3002, AllowsSale=False), "d2")
    work_off()
    assert abaha.products[3001]["active"] is False
    assert abaha.products[3002]["active"] is False


def test_a_body_that_does_not_say_whether_a_row_is_a_variant_is_completed_by_reading_it(
    services: Services, work_off: Drain, abaha: FakeAbaha, kiotviet: FakeKiotViet
) -> None:
    kiotviet.add_product(3001, code="SP000123", name="Áo thun cổ tròn", masterProductId=3000, attributes=[
        {"attributeName": "KÍCH THƯỚC", "attributeValue": "M"}])  # fmt: skip
    body = sample("kiotviet/product.update")  # attributes, and no MasterProductId key
    events = normalize_delivery(json.dumps(body).encode(), body, SHOP, "2026-11-30T08:00:00+00:00").events
    services.inbox.accept(SHOP, events, branch_id=BRANCH)
    work_off()
    assert kiotviet.calls.count("product 3001") == 1
    assert abaha.products[3001]["master_kv_id"] == 3000


def test_a_deleted_product_is_hidden_once_kiotviet_confirms_it_is_gone(
    services: Services, work_off: Drain, abaha: FakeAbaha, kiotviet: FakeKiotViet
) -> None:
    deliver(services, "product.update", product_item(Id=3002))
    work_off()
    deliver(services, "product.delete", items=[{"RemoveId": [3002]}])
    work_off()
    assert abaha.products[3002]["active"] is False  # hidden, still there for order history
    assert "product 3002" in kiotviet.calls  # the delete was checked against KiotViet


def test_a_delete_of_a_product_kiotviet_still_has_writes_it_instead(
    services: Services, work_off: Drain, abaha: FakeAbaha, kiotviet: FakeKiotViet
) -> None:
    kiotviet.add_product(3002, name="Áo sơ mi", code="SP000124")
    deliver(services, "product.delete", items=[{"RemoveId": [3002]}])
    work_off()
    assert abaha.products[3002]["active"] is True
    assert abaha.products[3002]["name"] == "Áo sơ mi"


def test_an_older_version_after_a_newer_is_stale_and_costs_no_write(
    services: Services, work_off: Drain, abaha: FakeAbaha
) -> None:
    deliver(services, "product.update", product_item(BasePrice=200000, ModifiedDate="2026-11-30T11:00:00+07:00"), "n")
    work_off()
    deliver(services, "product.update", product_item(BasePrice=100000, ModifiedDate="2026-11-30T10:00:00+07:00"), "o")
    work_off()
    assert abaha.products[3001]["price"] == 200000
    assert abaha.count("put_products") == 1
    assert services.state.counts(SHOP)["stale"] == 1


def test_the_same_delivery_twice_is_one_write(services: Services, work_off: Drain, abaha: FakeAbaha) -> None:
    deliver(services, "product.update", delivery_id="same")
    deliver(services, "product.update", delivery_id="same")
    work_off()
    assert abaha.count("put_products") == 1
    assert services.state.counts(SHOP)["duplicate"] == 1


def test_a_redelivery_of_the_same_version_is_not_written_again(
    services: Services, work_off: Drain, abaha: FakeAbaha
) -> None:
    deliver(services, "product.update", delivery_id="first")
    work_off()
    deliver(services, "product.update", delivery_id="second")  # a new delivery Id, the same content
    work_off()
    assert abaha.count("put_products") == 1


def test_an_equal_version_with_other_content_reads_what_kiotviet_holds_now(
    services: Services, work_off: Drain, abaha: FakeAbaha, kiotviet: FakeKiotViet
) -> None:
    when = "2026-11-30T10:20:30.1470000+07:00"
    deliver(services, "product.update", product_item(Name="Áo A", ModifiedDate=when), "a")
    work_off()
    kiotviet.add_product(3001, code="SP000123", name="Áo C", modifiedDate=when, inventories=[], masterProductId=None)
    deliver(services, "product.update", product_item(Name="Áo B", ModifiedDate=when), "b")
    work_off()
    assert "product 3001" in kiotviet.calls
    assert abaha.products[3001]["name"] == "Áo C"  # what the source holds now wins


def test_a_thin_payload_is_completed_by_reading_the_product(
    services: Services, work_off: Drain, abaha: FakeAbaha, kiotviet: FakeKiotViet
) -> None:
    kiotviet.add_product(3001, code="SP000123", name="Áo thun", basePrice=99000,
                         inventories=[{"branchId": BRANCH, "onHand": 5, "reserved": 1}])  # fmt: skip
    deliver(services, "product.update", items=[{"Id": 3001, "ModifiedDate": "2026-11-30T10:00:00"}])
    work_off()
    assert kiotviet.calls.count("product 3001") == 1
    assert (abaha.products[3001]["name"], abaha.products[3001]["price"], abaha.products[3001]["stock"]) == (
        "Áo thun", 99000, 4)  # fmt: skip


def test_abaha_refusing_one_product_fails_that_product_alone(
    services: Services, work_off: Drain, abaha: FakeAbaha
) -> None:
    abaha.refused_products.add(3002)
    items = [{**sample("kiotviet/product.update")["Notifications"][0]["Data"][0], "MasterProductId": None}] * 2
    items[1] = {**items[1], "Id": 3002, "Code": "SP000124"}
    deliver(services, "product.update", items=items)
    work_off()
    assert 3001 in abaha.products and 3002 not in abaha.products
    (failed,) = failed_changes(services.redis, SHOP)  # a job of its own, replayable alone
    assert (failed.kind, failed.entity_id) == ("product.update", "3002")
    assert failed.message.startswith("Abaha refused product SP000124 (3002)")
    # the written product's stock is read to confirm the body's; the refused one's is not (its
    # write would ask Abaha for the product again: a second failure of one refusal)
    applied = services.pending.applied(SHOP, "stock", ["3001", "3002"])
    assert applied["3001"] is not None and applied["3002"] is None, applied


def test_a_failed_change_is_listed_and_replayed_alone_through_the_admin_api(
    services: Services, work_off: Drain, abaha: FakeAbaha, client: FlaskClient
) -> None:
    abaha.refused_products.update({3002, 3003})
    base = {**sample("kiotviet/product.update")["Notifications"][0]["Data"][0], "MasterProductId": None}
    deliver(services, "product.update", items=[{**base, "Id": i, "Code": f"SP{i}"} for i in (3001, 3002, 3003)])
    work_off()
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    listed: list[dict[str, Any]] = client.get(f"/admin/failed?shop_id={SHOP}", headers=auth).json["failed"]  # type: ignore[index]
    assert sorted(f["entity_id"] for f in listed) == ["3002", "3003"]
    assert all(f["message"].startswith("Abaha refused product") and "Traceback" not in f["message"] for f in listed)
    assert client.post("/admin/failed/requeue", json={"job_id": 7}, headers=auth).status_code == 400
    abaha.refused_products.clear()  # the operator fixed the cause of both; replays one of them
    one = next(f for f in listed if f["entity_id"] == "3002")
    answer = client.post("/admin/failed/requeue", json={"job_id": one["job_id"]}, headers=auth).json
    assert answer == {"requeued": 1, "job_ids": [one["job_id"]]}
    work_off()
    assert 3002 in abaha.products and 3003 not in abaha.products
    assert abaha.product_writes.count(3002) == 1  # applied once
    left: list[dict[str, Any]] = client.get(f"/admin/failed?shop_id={SHOP}", headers=auth).json["failed"]  # type: ignore[index]
    assert [f["entity_id"] for f in left] == ["3003"]


def test_category_update_and_a_confirmed_delete(
    services: Services, work_off: Drain, abaha: FakeAbaha, kiotviet: FakeKiotViet
) -> None:
    deliver(services, "category.update")
    work_off()
    assert abaha.categories[101] == {"name": "Áo", "parent_kv_id": None}
    body = {"Id": "del", "Notifications": [{"Action": "category.delete", "Data": [{"RemoveId": [101]}]}]}
    services.inbox.accept(SHOP, normalize_delivery(b"", body, SHOP, "2026-11-30T09:00:00+00:00").events, BRANCH)
    work_off()
    assert 101 not in abaha.categories


def test_a_price_change_reads_the_price_kiotviet_holds_and_creates_the_list_first(
    services: Services, work_off: Drain, abaha: FakeAbaha, kiotviet: FakeKiotViet
) -> None:
    kiotviet.books[201] = {"id": 201, "name": "Giá sỉ", "isActive": True, "modifiedDate": stamp()}
    kiotviet.prices[201] = {3001: 131000}
    deliver(services, "pricebookdetail.update")  # says 125000: an old value, KiotViet now holds 131000
    work_off()
    assert abaha.price_lists[201] == {"name": "Giá sỉ", "active": True}
    assert abaha.prices[(201, 3001)] == 131000


def test_a_removed_price_is_deleted_on_abaha(
    services: Services, work_off: Drain, abaha: FakeAbaha, kiotviet: FakeKiotViet
) -> None:
    kiotviet.books[201] = {"id": 201, "name": "Giá sỉ", "isActive": True}
    kiotviet.prices[201] = {3001: 120000}
    deliver(services, "pricebookdetail.update")
    work_off()
    del kiotviet.prices[201][3001]
    body = {"Id": "pd", "Notifications": [{"Action": "pricebookdetail.delete", "Data": [
        {"PricebookId": 201, "ProductIds": [3001]}]}]}  # fmt: skip
    services.inbox.accept(SHOP, normalize_delivery(b"", body, SHOP, "2026-11-30T09:00:00+00:00").events, BRANCH)
    work_off()
    assert (201, 3001) not in abaha.prices


def test_branches_invoices_and_customer_deletes_are_ignored_by_design(
    services: Services, work_off: Drain, abaha: FakeAbaha
) -> None:
    for name in ("branch.update", "branch.delete", "customer.delete", "invoice.update"):
        deliver(services, name)
    work_off()
    assert abaha.calls == []
    assert services.state.counts(SHOP)["ignored"] >= 4


def test_a_batch_whose_reads_take_its_time_leaves_the_rest_to_the_next_batch(
    services: Services, work_off: Drain, abaha: FakeAbaha, kiotviet: FakeKiotViet, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow_product_reads(monkeypatch, kiotviet, seconds=15)
    items = []
    for pid in range(4001, 4011):  # bodies that do not say whether each row is a variant: each is read
        kiotviet.add_product(pid, attributes=[{"attributeName": "MÀU SẮC", "attributeValue": "Đỏ"}])
        item = sample("kiotviet/product.update")["Notifications"][0]["Data"][0]
        items.append({**item, "Id": pid, "Code": f"SP{pid}"})
    deliver(services, "product.update", items=items)
    work_off()
    assert sorted(abaha.products) == list(range(4001, 4011))
    per_call = [int(c.split(" ")[1]) for c in abaha.calls if c.startswith("put_products")]
    # a batch stops starting reads after BATCH_SECONDS, so no batch runs into RQ's job timeout
    assert max(per_call) <= BATCH_SECONDS // 15 + 1 and sum(per_call) == 10, per_call
    assert failed_changes(services.redis) == [] and services.state.counts(SHOP).get("retrying", 0) == 0


def test_a_batch_whose_price_reads_take_its_time_leaves_the_rest_to_the_next_batch(
    services: Services, work_off: Drain, abaha: FakeAbaha, kiotviet: FakeKiotViet, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow_product_reads(monkeypatch, kiotviet, seconds=15)
    kiotviet.books[201] = {"id": 201, "name": "Giá sỉ", "isActive": True, "modifiedDate": stamp()}
    abaha.price_lists[201] = {"name": "Giá sỉ", "active": True}
    ids = list(range(9001, 9011))  # the last of a long book: cheaper read product by product
    kiotviet.prices[201] = {pid: 1000 + pid for pid in range(1, 3001)} | {pid: 5000 + pid for pid in ids}
    for pid in ids:
        kiotviet.add_product(pid)
    items = [{"PriceBookId": 201, "ProductId": pid, "Price": 1} for pid in ids]
    deliver(services, "pricebookdetail.update", items=items)
    work_off()
    assert {pid: abaha.prices[(201, pid)] for pid in ids} == {pid: 5000 + pid for pid in ids}
    reads = [c for c in kiotviet.calls if c.startswith("product ")]
    batches = abaha.count("put_prices")
    # a batch stops starting reads after BATCH_SECONDS, so no batch runs into RQ's job timeout
    assert len(reads) == 10 and batches >= 10 / (BATCH_SECONDS // 15 + 1), (reads, batches)
    assert failed_changes(services.redis) == [] and services.state.counts(SHOP).get("retrying", 0) == 0


def slow_product_reads(monkeypatch: pytest.MonkeyPatch, kiotviet: FakeKiotViet, seconds: float) -> None:
    """Each read of a product from KiotViet takes `seconds` of the batch's clock (the deadline's)."""
    clock = SimpleNamespace(now=0.0)
    monkeypatch.setattr("workers.apply.time", SimpleNamespace(monotonic=lambda: clock.now))
    read = kiotviet.product

    def slow_read(product_id: int) -> Any:
        clock.now += seconds
        return read(product_id)

    monkeypatch.setattr(kiotviet, "product", slow_read)


def test_a_product_is_not_written_while_another_batch_writes_its_stock(
    services: Services, work_off: Drain, abaha: FakeAbaha, kiotviet: FakeKiotViet
) -> None:
    """A product's body carries its stock: written beside a stock batch of the same product, it
    could put back the value that batch is replacing (seen in a chaos run: Abaha 21, KiotViet
    175). The product waits for that batch; a batch holding both writes both."""
    lease_id, _, held = services.pending.lease(SHOP, ["stock:3001"], 30_000)  # a stock batch in flight
    assert held == {"stock:3001"}
    deliver(services, "product.update")
    work_off()
    assert 3001 not in abaha.products  # retried alone a moment later: not written, not failed
    assert failed_changes(services.redis) == [] and services.state.counts(SHOP).get("retrying") == 1
    services.pending.finish(SHOP, lease_id, [Release("stock:3001", Action.DONE)])
    queue_scheduled(services.redis)
    work_off()
    assert abaha.products[3001]["sku"] == "SP000123"
    # one delivery with the product and its stock: one batch holds both, nothing waits
    kiotviet.add_product(3002, code="SP3002", masterProductId=None)
    kiotviet.set_stock(3002, BRANCH, 7)
    deliver(services, "product.update", product_item(Id=3002, Code="SP3002", ModifiedDate="2026-11-30T11:00:00"))
    item = {"ProductId": 3002, "BranchId": BRANCH}
    stock = {"Id": "s", "Notifications": [{"Action": "stock.update", "Data": [item]}]}
    services.inbox.accept(SHOP, normalize_delivery(b"s", stock, SHOP, stamp()).events, branch_id=BRANCH)
    work_off()
    assert (abaha.products[3002]["sku"], abaha.products[3002]["stock"]) == ("SP3002", 7)
