"""The simulated KiotViet's orders and customers: `POST /orders` refuses as the real one does
(out of stock, counting a unit row in its base units; ordering off; unknown product or
surcharge), lists filter and order as the real ones, and changes send webhooks."""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any

from flask import Blueprint, Response, abort, jsonify, request

from sandbox.kiotviet_catalog import base_of
from sandbox.kiotviet_data import KiotVietSandbox, Retailer, deliver, now_text, pascal
from sandbox.kiotviet_http import answer_change, authenticated, listing, not_found, page, refuse, values
from sandbox.phones import same_phone

STATUS_VALUES = {1: "Phiếu tạm", 2: "Đang giao hàng", 3: "Hoàn thành", 4: "Đã hủy", 5: "Đã xác nhận"}


def deliver_later(retailer: Retailer, kind: str, data: list[Any]) -> None:
    """KiotViet sends webhooks for changes made through the API too, a moment later."""
    threading.Thread(target=deliver, args=(retailer, kind, data), daemon=True).start()


def api_routes(sandbox: KiotVietSandbox) -> Blueprint:  # noqa: C901 - one small closure per route
    bp = Blueprint("kv_sales", __name__, url_prefix="/kiotviet")

    @bp.post("/orders")
    def create_order() -> Any:
        retailer = authenticated(sandbox)
        body = request.get_json(force=True) or {}
        with sandbox.lock:
            problem = order_problem(retailer, body)
        if problem:
            return refuse(problem)
        order = new_order(sandbox, retailer, body)
        hold = retailer.order_hold
        if hold is not None:
            retailer.order_hold = None
            hold.created.set()
            hold.release.wait(timeout=120)
        return jsonify(id=order["id"], code=order["code"], total=order["total"], status=order["status"])

    @bp.get("/orders/<int:order_id>")
    def order(order_id: int) -> Response:
        return jsonify(authenticated(sandbox).orders.get(order_id) or not_found(f"Đơn hàng {order_id} không tồn tại"))

    @bp.get("/orders")
    def orders() -> Response:
        retailer = authenticated(sandbox)
        with sandbox.lock:
            found = matching(retailer.orders, branchId=values("branchIds"), status=values("status"),
                             customerId=values("customerIds"))  # fmt: skip
        return listing(retailer, found, "orders", "removeIds")

    @bp.get("/customers")
    def customers() -> Response:
        retailer = authenticated(sandbox)
        phone, code = request.args.get("contactNumber"), request.args.get("code")
        with sandbox.lock:
            found = [c for c in matching(retailer.customers, code=[code] if code else [])
                     if not phone or same_phone(c.get("contactNumber"), phone)]  # fmt: skip
        return listing(retailer, found, "customers", "removeId")

    @bp.get("/customers/<int:customer_id>")
    def customer(customer_id: int) -> Response:
        found = authenticated(sandbox).customers.get(customer_id)
        return jsonify(found or not_found(f"Khách hàng {customer_id} không tồn tại"))

    @bp.post("/customers")
    def create_customer() -> Any:
        retailer = authenticated(sandbox)
        body = request.get_json(force=True) or {}
        if not body.get("name"):
            return refuse("Tên khách hàng không được để trống")
        customer_id = sandbox.new_id()
        with sandbox.lock:
            customer = {**body, "id": customer_id, "code": body.get("code") or f"KH{customer_id:06d}"}
            problem = code_taken(retailer, customer)
            saved = None if problem else save_customer(retailer, customer)
        return refuse(problem) if problem else jsonify(saved)

    @bp.put("/customers/<int:customer_id>")
    def update_customer(customer_id: int) -> Any:
        retailer = authenticated(sandbox)
        with sandbox.lock:
            current = retailer.customers.get(customer_id) or not_found(f"Khách hàng {customer_id} không tồn tại")
            customer = {**current, **(request.get_json(force=True) or {}), "id": customer_id}
            problem = code_taken(retailer, customer)
            saved = None if problem else save_customer(retailer, customer)
        return refuse(problem) if problem else jsonify(saved)

    @bp.get("/customers/group")
    def customer_groups() -> Response:
        return page(authenticated(sandbox).customer_groups)

    return bp


def matching(items: dict[int, dict[str, Any]], **wanted: list[str]) -> list[dict[str, Any]]:
    """The items, by id, whose field equals one of the values wanted for it (no values: any)."""
    return [item for _, item in sorted(items.items())
            if all(not allowed or str(item.get(key)) in allowed for key, allowed in wanted.items())]  # fmt: skip


def code_taken(retailer: Retailer, customer: dict[str, Any]) -> str | None:
    """KiotViet's refusal when another customer of the shop already has this code."""
    code = str(customer.get("code") or "").casefold()
    clash = any(str(c.get("code") or "").casefold() == code and i != customer["id"]
                for i, c in retailer.customers.items())  # fmt: skip
    return f"Mã khách hàng {customer['code']} đã tồn tại trong hệ thống" if clash else None


def order_problem(retailer: Retailer, body: dict[str, Any]) -> str | None:
    """Why KiotViet would refuse this order, in its words; None when it would not."""
    if not retailer.ordering_enabled:
        return "Thiết lập “Cho phép đặt hàng” đang không được bật."
    branch = body.get("branchId")
    if branch not in retailer.branches:
        return f"Chi nhánh {branch} không tồn tại"
    wanted: dict[int, float] = defaultdict(float)  # base units per base row, over all lines
    for line in body.get("orderDetails") or []:
        product = retailer.products.get(line.get("productId"))
        if product is None:
            return f"Sản phẩm {line.get('productCode')} không tồn tại"
        base = base_of(retailer, product) or product
        # a case of 24 takes 24 cans from the base row's stock, which all its units share
        wanted[base["id"]] += line["quantity"] * ((product.get("conversionValue") or 1) if base is not product else 1)
        stock = next((i for i in base["inventories"] if i["branchId"] == branch), {"onHand": 0, "reserved": 0})
        if (
            not retailer.settings.get("AllowOrderWhenOutStock")
            and stock["onHand"] - stock["reserved"] < wanted[base["id"]]
        ):
            return f"Không đủ số lượng tồn kho cho sản phẩm {product['code']}"
    for fee in body.get("surchages") or []:
        if not any(s["id"] == fee.get("id") and s["surchargeCode"] == fee.get("code") for s in retailer.surcharges):
            return f"Thu khác {fee.get('code')} không tồn tại"
    customer = (body.get("customer") or {}).get("id")
    if customer is not None and customer not in retailer.customers:
        return f"Khách hàng {customer} không tồn tại"
    return None


def new_order(sandbox: KiotVietSandbox, retailer: Retailer, body: dict[str, Any]) -> dict[str, Any]:
    lines = body.get("orderDetails") or []
    fees = sum(fee.get("price", 0) for fee in body.get("surchages") or [])
    total = sum(d["quantity"] * (d["price"] - d.get("discount", 0)) for d in lines) - body.get("discount", 0) + fees
    order_id = sandbox.new_id()
    order = {
        "id": order_id, "code": f"DH{order_id:06d}", "branchId": body["branchId"], "status": 1,
        "statusValue": STATUS_VALUES[1], "description": body.get("description"), "discount": body.get("discount", 0),
        "total": total, "totalPayment": body.get("totalPayment", 0), "orderDetails": lines,
        "customerId": (body.get("customer") or {}).get("id"), "purchaseDate": body.get("purchaseDate"),
        "invoiceOrderSurcharges": [{"surchargeId": f["id"], "price": f["price"]} for f in body.get("surchages") or []],
        "createdDate": now_text(), "modifiedDate": now_text(),
    }  # fmt: skip
    with sandbox.lock:
        retailer.orders[order_id] = order
    return order


def save_customer(retailer: Retailer, customer: dict[str, Any]) -> dict[str, Any]:
    customer["modifiedDate"] = now_text()
    retailer.customers[customer["id"]] = customer
    deliver_later(retailer, "customer.update", [pascal(customer)])
    return customer


def control_routes(sandbox: KiotVietSandbox) -> Blueprint:
    bp = Blueprint("kv_sales_control", __name__, url_prefix="/_sandbox/kiotviet/<retailer>")

    def shop(retailer: str) -> Retailer:
        return sandbox.retailers.get(retailer) or abort(404)

    def body() -> dict[str, Any]:
        given = request.get_json(force=True, silent=True)
        return given if isinstance(given, dict) else {}

    @bp.post("/orders/<int:order_id>/status")
    def set_status(retailer: str, order_id: int) -> Response:
        found = shop(retailer)
        status = int(body()["status"])
        with sandbox.lock:
            order = found.orders.get(order_id) or abort(404)
            order.update(status=status, statusValue=STATUS_VALUES.get(status, "?"), modifiedDate=now_text())
            data = pascal(order)
        return answer_change(found, "order.update", [data])

    @bp.post("/orders/<int:order_id>")
    def edit_order(retailer: str, order_id: int) -> Response:
        """A shop editing an order by hand, e.g. its description."""
        found, change = shop(retailer), body()
        with sandbox.lock:
            order = found.orders.get(order_id) or abort(404)
            order.update({k: v for k, v in change.items() if k not in ("id", "code")}, modifiedDate=now_text())
            data = pascal(order)
        return answer_change(found, "order.update", [data])

    @bp.post("/orders/<int:order_id>/copy")
    def copy_order(retailer: str, order_id: int) -> Response:
        """A shop copying an order by hand: a new order, same lines and description, as a draft."""
        found, change = shop(retailer), body()
        copy_id = sandbox.new_id()
        with sandbox.lock:
            original = found.orders.get(order_id) or abort(404)
            copy = {**original, **change, "id": copy_id, "code": f"DH{copy_id:06d}", "status": 1,
                    "statusValue": STATUS_VALUES[1], "createdDate": now_text(), "modifiedDate": now_text()}  # fmt: skip
            found.orders[copy_id] = copy
            data = pascal(copy)
        return answer_change(found, "order.update", [data], order=copy)

    @bp.post("/customers/<int:customer_id>")
    def edit_customer(retailer: str, customer_id: int) -> Response:
        found = shop(retailer)
        with sandbox.lock:
            current = found.customers.get(customer_id) or {"id": customer_id, "code": f"KH{customer_id:06d}"}
            current = {**current, **body(), "modifiedDate": now_text()}
            found.customers[customer_id] = current
            data = pascal(current)
        return answer_change(found, "customer.update", [data])

    @bp.delete("/customers/<int:customer_id>")
    def delete_customer(retailer: str, customer_id: int) -> Response:
        found = shop(retailer)
        with sandbox.lock:
            found.customers.pop(customer_id, None) or abort(404)
            found.removed.setdefault("customers", []).append((customer_id, now_text()))
        return answer_change(found, "customer.delete", [{"RemoveId": [customer_id]}])

    @bp.get("/orders")
    def all_orders(retailer: str) -> Response:
        with sandbox.lock:
            return jsonify(list(shop(retailer).orders.values()))

    return bp
