"""The simulated KiotViet's catalogue: variants and units as the real API shows them, stock,
price books, deletions, and lists paged, filtered and ordered."""

from __future__ import annotations

import json
from typing import Any

import pytest
import responses

from sandbox.kiotviet_data import Retailer, grow_catalogue
from tests.helpers import sample
from tests.unit.sandbox_support import Peers, receiving


@pytest.fixture
def peers() -> Peers:
    return Peers.start(variants_and_units=True)


def order(peers: Peers, *lines: tuple[int, int]) -> Any:
    body = {"branchId": 11, "orderDetails": [{"productId": p, "productCode": peers.retailer.products[p]["code"],
                                              "quantity": q, "price": 1000} for p, q in lines]}  # fmt: skip
    return peers.api("POST", "/orders", json=body)


def test_variants_carry_their_masters_id_and_their_own_code_price_and_stock(peers: Peers) -> None:
    master = peers.api_get("/products/3101")
    sizes = [peers.api_get(f"/products/{pid}") for pid in (3102, 3103)]
    assert master["hasVariants"] is True and "masterProductId" not in master
    assert [s["masterProductId"] for s in sizes] == [3101, 3101]
    assert [s["attributes"] for s in sizes] == [[{"attributeName": "KÍCH THƯỚC", "attributeValue": "M"}],
                                                [{"attributeName": "KÍCH THƯỚC", "attributeValue": "L"}]]  # fmt: skip
    assert len({s["code"] for s in [master, *sizes]}) == 3
    assert [s["basePrice"] for s in sizes] == [320000, 340000]
    assert sizes[0]["inventories"] != sizes[1]["inventories"]


def test_a_unit_row_reports_its_base_rows_stock_in_base_units_and_has_no_images(peers: Peers) -> None:
    case, can = peers.api_get("/products/3202"), peers.api_get("/products/3201")
    assert (case["masterUnitId"], case["conversionValue"], case["images"]) == (3201, 24, [])
    assert case["inventories"] == can["inventories"]  # 240 cans shown as the case's onHand: not 10 cases
    assert can["units"] == [{"id": 3202, "code": "SP000301", "name": "Nước ngọt thùng 24 lon", "unit": "thùng",
                             "conversionValue": 24, "basePrice": 230000}]  # fmt: skip
    assert can["images"] and "masterUnitId" not in can
    peers.retailer.products[3201]["inventories"][0]["onHand"] = 7  # the base row is the one source
    assert peers.api_get("/products/3202")["inventories"][0]["onHand"] == 7


@responses.activate
def test_a_base_rows_stock_change_restamps_its_units_and_sends_one_item_for_the_base(peers: Peers) -> None:
    received = receiving(responses.mock)
    peers.hook("stock.update")
    before = {r["id"]: r["modifiedDate"] for r in peers.api_get("/productOnHands", pageSize=100)["data"]}
    answer = peers.control("POST", "/products/3201/stock", {"branchId": 11, "onHand": 100, "reserved": 4})
    assert answer.get_json()["units"] == [3202]
    (envelope,) = received.envelopes()
    assert [(i["ProductId"], i["OnHand"], i["Reserved"]) for i in envelope["Notifications"][0]["Data"]] == [
        (3201, 100, 4)]  # fmt: skip
    after = {r["id"]: r for r in peers.api_get("/productOnHands", pageSize=100)["data"]}
    assert after[3202]["modifiedDate"] == after[3201]["modifiedDate"] != before[3202]
    assert after[3202]["inventories"] == after[3201]["inventories"]
    assert after[3001]["modifiedDate"] == before[3001]
    assert peers.api_get("/products/3202")["inventories"][-1] == {"branchId": 11, "onHand": 100, "reserved": 4}


@responses.activate
def test_product_updates_of_a_variant_and_a_unit_row_carry_their_links(peers: Peers) -> None:
    received = receiving(responses.mock)
    peers.hook("product.update")
    peers.control("POST", "/products/3104", {"code": "SP000200-XL", "name": "Áo sơ mi Oxford", "masterProductId": 3101,
                                              "attributes": [{"attributeName": "KÍCH THƯỚC", "attributeValue": "XL"}],
                                              "basePrice": 360000})  # fmt: skip
    peers.control("POST", "/products/3202", {"basePrice": 235000})
    variant, case = (e["Notifications"][0]["Data"][0] for e in received.envelopes())
    assert (variant["Id"], variant["MasterProductId"], variant["Attributes"][0]["AttributeValue"]) == (3104, 3101, "XL")
    assert (case["MasterUnitId"], case["ConversionValue"], case["Images"], case["BasePrice"]) == (3201, 24, [], 235000)
    assert case["Inventories"] == [{"BranchId": 11, "OnHand": 240, "Reserved": 24},
                                   {"BranchId": 12, "OnHand": 48, "Reserved": 0}]  # the can's, in cans  # fmt: skip
    assert [v["id"] for v in peers.api_get("/products", pageSize=100)["data"] if v.get("masterProductId")] == [
        3102, 3103, 3104]  # fmt: skip


def test_a_unit_rows_own_stock_cannot_be_set(peers: Peers) -> None:
    assert peers.control("POST", "/products/3202/stock", {"branchId": 11, "onHand": 5}).status_code == 400


def test_an_order_for_cases_needs_conversion_times_the_cans(peers: Peers) -> None:
    peers.retailer.settings["AllowOrderWhenOutStock"] = False  # 240 cans on hand, 24 reserved: 216 sellable
    assert order(peers, (3202, 9)).status_code == 200
    refused = order(peers, (3202, 10))
    assert refused.status_code == 400
    assert refused.get_json()["responseStatus"]["message"] == "Không đủ số lượng tồn kho cho sản phẩm SP000301"
    assert order(peers, (3202, 8), (3201, 25)).status_code == 400  # 192 + 25 cans from the same stock
    assert order(peers, (3202, 8), (3201, 24)).status_code == 200
    peers.retailer.settings["AllowOrderWhenOutStock"] = True
    assert order(peers, (3202, 1000)).status_code == 200


def test_product_on_hands_rows_as_the_real_api_answers_them(peers: Peers) -> None:
    rows = peers.api_get("/productOnHands", branchIds=11, pageSize=100)["data"]
    can = next(r for r in rows if r["id"] == 3201)
    assert set(can) == {"id", "code", "modifiedDate", "inventories"}
    assert can["inventories"] == [{"branchId": 11, "onhand": 240, "reserved": 24}]
    assert len(peers.api_get("/productOnHands", branchIds="11,12")["data"][0]["inventories"]) == 2


def test_product_on_hands_since_a_moment_ordered_by_stock_time(peers: Peers) -> None:
    stamp = "2030-01-01T10:00:00.0000000+07:00"
    for n, pid in enumerate((3002, 3201, 3001)):
        peers.retailer.products[pid]["stockModifiedDate"] = stamp.replace("10:00", f"10:0{n}")
    naive = "2030-01-01T10:00:00"  # Vietnam time, so inclusive of 10:00+07:00
    rows = peers.api_get("/productOnHands", lastModifiedFrom=naive, orderBy="modifiedDate")["data"]
    assert [r["id"] for r in rows] == [3002, 3201, 3202, 3001]  # the case follows its can, same stamp, by id
    rows = peers.api_get("/productOnHands", lastModifiedFrom=naive, orderBy="modifiedDate", orderDirection="Desc")
    assert [r["id"] for r in rows["data"]] == [3001, 3202, 3201, 3002]
    assert peers.api_get("/productOnHands", lastModifiedFrom="2030-01-01T03:00:01Z")["total"] == 3


def test_include_pricebook_adds_the_prices_of_each_book(peers: Peers) -> None:
    peers.retailer.pricebooks[202] = {"id": 202, "name": "Giá lẻ", "isActive": True, "prices": {3202: 225000},
                                      "modifiedDate": "2026-11-30T10:00:00.0000000+07:00"}  # fmt: skip
    case = peers.api_get("/products/3202", includePricebook="true")
    assert case["priceBooks"] == [{"priceBookId": 201, "priceBookName": "Giá sỉ", "price": 220000},
                                  {"priceBookId": 202, "priceBookName": "Giá lẻ", "price": 225000}]  # fmt: skip
    listed = {p["id"]: p for p in peers.api_get("/products", includePricebook="true", pageSize=100)["data"]}
    assert listed[3002]["priceBooks"] == [] and "priceBooks" not in peers.api_get("/products/3202")


def test_lists_honour_page_size_offset_and_their_maximum(peers: Peers) -> None:
    grow_catalogue(peers.retailer, products=150)
    first = peers.api_get("/products", pageSize=500)
    assert (first["total"], first["pageSize"], len(first["data"])) == (157, 100, 100)
    rest = peers.api_get("/products", pageSize=100, currentItem=100)
    assert [p["id"] for p in first["data"] + rest["data"]] == sorted(peers.retailer.products)
    assert len(peers.api_get("/products")["data"]) == 20  # KiotViet's default page


@pytest.mark.parametrize("path", ["/products", "/productOnHands"])
def test_lists_order_by_code_either_way(peers: Peers, path: str) -> None:
    codes = [p["code"] for p in peers.api_get(path, orderBy="code", orderDirection="Desc")["data"]]
    assert codes == sorted(codes, reverse=True) and len(codes) == 7
    ids = [p["id"] for p in peers.api_get(path, orderBy="id", orderDirection="Desc")["data"]]
    assert ids == sorted(ids, reverse=True)


def test_products_since_a_moment_are_inclusive_and_read_naive_times_as_vietnams(peers: Peers) -> None:
    peers.retailer.products[3002]["modifiedDate"] = "2030-05-05T08:00:00.0000000+07:00"
    assert [p["id"] for p in peers.api_get("/products", lastModifiedFrom="2030-05-05T08:00:00")["data"]] == [3002]
    assert peers.api_get("/products", lastModifiedFrom="2030-05-05T01:00:00.000001Z")["data"] == []
    assert peers.api("GET", "/products", query_string={"lastModifiedFrom": "yesterday"}).status_code == 400


@responses.activate
def test_a_deleted_category_answers_404_is_announced_and_listed_as_removed(peers: Peers) -> None:
    received = receiving(responses.mock)
    peers.hook("category.delete")
    assert peers.control("DELETE", "/categories/102").status_code == 200
    answer = peers.api("GET", "/categories/102")
    assert answer.status_code == 404 and answer.get_json()["responseStatus"]["errorCode"] == "NotFound"
    assert received.envelopes()[0]["Notifications"][0]["Data"] == [{"RemoveId": [102]}]
    listed = peers.api_get("/categories", includeRemoveIds="true")
    assert listed["removedIds"] == [102] and [c["categoryId"] for c in listed["data"]] == [101]


def test_categories_as_a_tree_and_with_has_child(peers: Peers) -> None:
    peers.control("POST", "/categories/150", {"categoryName": "Áo khoác", "parentId": 101}, deliver=0)
    flat = {c["categoryId"]: c["hasChild"] for c in peers.api_get("/categories")["data"]}
    assert flat == {101: True, 102: False, 150: False}
    tree = peers.api_get("/categories", hierachicalData="true")["data"]
    assert [(c["categoryId"], [k["categoryId"] for k in c["children"]]) for c in tree] == [(101, [150]), (102, [])]


@responses.activate
def test_price_books_are_changed_deleted_and_their_prices_removed_with_kiotviets_bodies(peers: Peers) -> None:
    received = receiving(responses.mock)
    for kind in ("pricebook.update", "pricebook.delete", "pricebookdetail.delete"):
        peers.hook(kind)
    peers.control("POST", "/pricebooks/201", {"name": "Giá sỉ 2027", "isActive": False})
    assert {k: v for k, v in peers.api_get("/pricebooks")["data"][0].items() if k in ("name", "isActive")} == {
        "name": "Giá sỉ 2027", "isActive": False}  # fmt: skip
    peers.control("DELETE", "/pricebooks/201/prices/3001")
    assert 3001 not in [d["productId"] for d in peers.api_get("/pricebooks/201")["data"]]
    peers.control("DELETE", "/pricebooks/201")
    assert peers.api("GET", "/pricebooks/201").status_code == 404
    assert peers.api_get("/pricebooks", includeRemoveIds="true")["removeIds"] == [201]
    update, detail, deleted = (e["Notifications"][0] for e in received.envelopes())
    assert update["Action"] == f"pricebook.update.{peers.retailer.retailer_id}"
    assert (update["Data"][0]["Id"], update["Data"][0]["Name"], update["Data"][0]["IsActive"]) == (
        201, "Giá sỉ 2027", False)  # fmt: skip
    assert detail["Data"] == [{"PricebookId": 201, "ProductIds": [3001]}]
    assert deleted["Data"] == [201]


def test_grow_catalogue_adds_variant_groups_and_unit_rows() -> None:
    retailer = Retailer(name="big", retailer_id=1, client_id="c", client_secret="s")
    grow_catalogue(retailer, products=10, variant_groups=3, variants_per_group=4, unit_rows=2)
    assert len(retailer.products) == 10 + 3 * 5 + 2
    masters = [p for p in retailer.products.values() if p.get("hasVariants")]
    assert len(masters) == 3
    for master in masters:
        variants = [p for p in retailer.products.values() if p.get("masterProductId") == master["id"]]
        assert len(variants) == 4 and len({v["attributes"][0]["attributeValue"] for v in variants}) == 4
    units = [p for p in retailer.products.values() if "masterUnitId" in p]
    assert [(u["masterUnitId"], u["conversionValue"], u["images"]) for u in units] == [(100000, 6, []),
                                                                                      (100001, 12, [])]  # fmt: skip
    assert len({p["id"] for p in retailer.products.values()}) == len(retailer.products)


def rest_keys(name: str) -> set[str]:
    return set(sample(f"kiotviet/{name}"))


@pytest.mark.parametrize("fixture, product_id", [("rest.product.variant", 3102), ("rest.product.unit", 3202)])
def test_the_rest_fixtures_are_what_the_sandbox_answers(peers: Peers, fixture: str, product_id: int) -> None:
    answer = peers.api_get(f"/products/{product_id}", includePricebook="true")
    recorded = sample(f"kiotviet/{fixture}")
    ignored = ("modifiedDate", "description")
    assert {k: v for k, v in recorded.items() if k not in ignored} == {
        k: v for k, v in answer.items() if k not in ignored}  # fmt: skip


def test_the_webhook_fixtures_hold_a_master_with_its_variants_and_a_unit_row() -> None:
    variant = sample("kiotviet/product.update.variant")["Notifications"][0]["Data"]
    assert [(p["Id"], p.get("MasterProductId"), p["HasVariants"]) for p in variant] == [
        (3101, None, True), (3102, 3101, False), (3103, 3101, False)]  # fmt: skip
    (unit,) = sample("kiotviet/product.update.unit")["Notifications"][0]["Data"]
    assert (unit["MasterUnitId"], unit["ConversionValue"], unit["Images"]) == (3201, 24, [])
    assert json.dumps(variant).count('"isActive": true') >= 3  # lower camel case, as real payloads
