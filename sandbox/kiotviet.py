"""A simulated KiotViet: token endpoint, the public API the service uses, and webhooks it sends.

Faithful to `kiotviet-api.md` where that document is sure, and picks one answer where it is
not (webhooks are signed hex HMAC-SHA256 keyed by the secret's text unless a test picks another
style, `/surcharges` answers 404 so the client's fallback from `/surchages` is exercised only
when asked, a unit row reports its base row's stock in base units).
Control routes under `/_sandbox/kiotviet/` change data and deliver the matching webhook.
"""

from __future__ import annotations

import secrets
from typing import Any

from flask import Blueprint, Response, abort, jsonify, request

from sandbox import faults, kiotviet_catalog, kiotviet_webhooks
from sandbox.kiotviet_catalog import base_of, rest_product, share_stock
from sandbox.kiotviet_data import KiotVietSandbox, Retailer, now_text, pascal
from sandbox.kiotviet_http import answer_change, authenticated, page, refuse


def create_blueprints(sandbox: KiotVietSandbox) -> list[Blueprint]:
    """The token endpoint, the public API, and the control routes (orders and customers are
    in kiotviet_sales)."""
    return [_token_routes(sandbox), _api_routes(sandbox), kiotviet_catalog.api_routes(sandbox),
            *kiotviet_webhooks.create_blueprints(sandbox), _control_routes(sandbox),
            faults.control_routes("kiotviet", "/_sandbox/kiotviet", sandbox.lock, sandbox.faults)]  # fmt: skip


def _token_routes(sandbox: KiotVietSandbox) -> Blueprint:
    bp = Blueprint("kv_token", __name__, url_prefix="/kiotviet-id")

    @bp.post("/connect/token")
    def token() -> Response | tuple[Response, int]:
        form = request.form
        if form.get("grant_type") != "client_credentials":
            return jsonify(error="unsupported_grant_type"), 400
        retailer = sandbox.by_client(form.get("client_id", ""), form.get("client_secret", ""))
        if retailer is None:
            return jsonify(error="invalid_client"), 400
        value = secrets.token_urlsafe(24)
        with sandbox.lock:
            sandbox.tokens[value] = retailer.name
        return jsonify(access_token=value, expires_in=86400, token_type="Bearer")

    return bp


def _api_routes(sandbox: KiotVietSandbox) -> Blueprint:
    bp = Blueprint("kv_api", __name__, url_prefix="/kiotviet")

    def shop() -> Retailer:
        return authenticated(sandbox)

    @bp.get("/branches")
    def branches() -> Response:
        return page(list(shop().branches.values()))

    @bp.get("/settings")
    def settings() -> Response:
        return jsonify(shop().settings)

    @bp.get("/surchages")
    def surcharges() -> Response | tuple[Response, int]:
        retailer = shop()
        if not retailer.surcharges_enabled:
            return refuse("Chưa bật thu khác trong thiết lập cửa hàng")
        return page(retailer.surcharges)

    return bp


def _control_routes(sandbox: KiotVietSandbox) -> Blueprint:
    bp = Blueprint("kv_control", __name__, url_prefix="/_sandbox/kiotviet/<retailer>")

    def shop(retailer: str) -> Retailer:
        return sandbox.retailers.get(retailer) or abort(404)

    def body() -> dict[str, Any]:
        given = request.get_json(force=True, silent=True)
        return given if isinstance(given, dict) else {}

    @bp.post("/products/<int:product_id>")
    def change_product(retailer: str, product_id: int) -> Response:
        found = shop(retailer)
        with sandbox.lock:
            blank = {"id": product_id, "inventories": [], "isActive": True, "allowsSale": True, "attributes": []}
            product = found.products.setdefault(product_id, blank)
            change = body()
            product.update(change)
            product["modifiedDate"] = now_text()
            if "inventories" in change and base_of(found, product) is None:
                share_stock(found, product_id, product["modifiedDate"])
            master = found.products.get(int(product.get("masterProductId") or product_id))
            if master is not product and master is not None:  # a variant added to its group later
                master["hasVariants"] = True
            data = pascal(rest_product(found, product))
        return answer_change(found, "product.update", [data])

    @bp.post("/products/<int:product_id>/stock")
    def change_stock(retailer: str, product_id: int) -> Response | tuple[Response, int]:
        found = shop(retailer)
        change = body()
        with sandbox.lock:
            product = found.products.get(product_id) or abort(404)
            base = base_of(found, product)
            if base is not None:
                return refuse(f"Hàng hóa {product_id} là đơn vị tính của {base['id']}: đổi tồn kho của {base['id']}")
            branch = int(change["branchId"])
            rows = [i for i in product["inventories"] if i["branchId"] != branch]
            row = {"branchId": branch, "onHand": change.get("onHand", 0), "reserved": change.get("reserved", 0)}
            product["inventories"] = [*rows, row]
            units = share_stock(found, product_id, now_text())
            data = {"ProductId": product_id, "ProductCode": product.get("code"), "BranchId": branch,
                    "OnHand": row["onHand"], "Reserved": row["reserved"]}  # fmt: skip
        return answer_change(found, "stock.update", [data], units=units)

    @bp.delete("/products/<int:product_id>")
    def delete_product(retailer: str, product_id: int) -> Response:
        found = shop(retailer)
        with sandbox.lock:
            found.products.pop(product_id, None)
            found.removed.setdefault("products", []).append((product_id, now_text()))
        return answer_change(found, "product.delete", [{"RemoveId": [product_id]}])

    @bp.post("/categories/<int:category_id>")
    def change_category(retailer: str, category_id: int) -> Response:
        found = shop(retailer)
        change = body()
        with sandbox.lock:
            category = found.categories.setdefault(category_id, {"categoryId": category_id, "parentId": None})
            category.update({k: v for k, v in change.items() if k in ("categoryName", "parentId")})
            category["modifiedDate"] = now_text()
            data = {"Id": category_id, "Name": category.get("categoryName"), "ParentId": category.get("parentId"),
                    "ModifiedDate": category["modifiedDate"]}  # fmt: skip
        return answer_change(found, "category.update", [data])

    @bp.delete("/categories/<int:category_id>")
    def delete_category(retailer: str, category_id: int) -> Response:
        found = shop(retailer)
        with sandbox.lock:
            found.categories.pop(category_id, None) or abort(404)
            found.removed.setdefault("categories", []).append((category_id, now_text()))
        return answer_change(found, "category.delete", [{"RemoveId": [category_id]}])

    @bp.post("/pricebooks/<int:book_id>")
    def change_pricebook(retailer: str, book_id: int) -> Response:
        found = shop(retailer)
        fields = ("name", "isActive", "isGlobal", "startDate", "endDate")
        change = body()
        with sandbox.lock:
            book = found.pricebooks.setdefault(book_id, {"id": book_id, "isActive": True, "isGlobal": True,
                                                         "prices": {}})  # fmt: skip
            book.update({k: v for k, v in change.items() if k in fields}, modifiedDate=now_text())
            data = {"Id": book_id, "Name": book.get("name"), "IsActive": book.get("isActive"),
                    "IsGlobal": book.get("isGlobal"), "StartDate": book.get("startDate"),
                    "EndDate": book.get("endDate"), "ModifiedDate": book["modifiedDate"]}  # fmt: skip
        return answer_change(found, "pricebook.update", [data])

    @bp.delete("/pricebooks/<int:book_id>")
    def delete_pricebook(retailer: str, book_id: int) -> Response:
        found = shop(retailer)
        with sandbox.lock:
            found.pricebooks.pop(book_id, None) or abort(404)
            found.removed.setdefault("pricebooks", []).append((book_id, now_text()))
        return answer_change(found, "pricebook.delete", [book_id])

    @bp.post("/pricebooks/<int:book_id>/prices/<int:product_id>")
    def change_price(retailer: str, book_id: int, product_id: int) -> Response:
        found = shop(retailer)
        price = body()["price"]
        with sandbox.lock:
            book = found.pricebooks.get(book_id) or abort(404)
            book["prices"][product_id] = price
        return answer_change(
            found, "pricebookdetail.update", [{"PriceBookId": book_id, "ProductId": product_id, "Price": price}]
        )

    @bp.delete("/pricebooks/<int:book_id>/prices/<int:product_id>")
    def delete_price(retailer: str, book_id: int, product_id: int) -> Response:
        found = shop(retailer)
        with sandbox.lock:
            book = found.pricebooks.get(book_id) or abort(404)
            book["prices"].pop(product_id, None)
        # lower-case b in PricebookId: as KiotViet spells it in this one body
        return answer_change(found, "pricebookdetail.delete", [{"PricebookId": book_id, "ProductIds": [product_id]}])

    @bp.post("/settings")
    def change_settings(retailer: str) -> Response:
        found = shop(retailer)
        with sandbox.lock:
            found.settings.update(body())
            return jsonify(found.settings)

    return bp
