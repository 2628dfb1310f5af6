"""The simulated KiotViet's orders and customers: `POST /orders` refuses as the real one does
(out of stock, ordering off, unknown product or surcharge), and changes send webhooks."""

from __future__ import annotations

import threading
from typing import Any

from flask import Blueprint, Response, abort, jsonify, request

from sandbox.kiotviet import after, authenticated, page, refuse
from sandbox.kiotviet_data import KiotVietSandbox, Retailer, deliver, now_text, pascal

STATUS_VALUES = {1: "Phiếu tạm", 2: "Đang giao hàng", 3: "Hoàn thành", 4: "Đã hủy", 5: "Đã xác nhận"}


def deliver_later(retailer: Retailer, kind: str, data: list[Any]) -> None:
    """KiotViet sends webhooks for changes made through the API too, a moment later."""
    threading.Thread(target=deliver, args=(retailer, kind, data), daemon=True).start()


def api_routes(sandbox: KiotVietSandbox) -> Blueprint:
    bp = Blueprint("kv_sales", __name__, url_prefix="/kiotviet")

    @bp.post("/orders")
    def create_order() -> Any:
        retailer = authenticated(sandbox)
        body = request.get_json(force=True) or {}
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
        return jsonify(authenticated(sandbox).orders.get(order_id) or abort(404))

    @bp.get("/orders")
    def orders() -> Response:
        return page(matching(authenticated(sandbox).orders, branchId=request.args.get("branchIds")))

    @bp.get("/customers")
    def customers() -> Response:
        return page(matching(authenticated(sandbox).customers, contactNumber=request.args.get("contactNumber")))

    @bp.get("/customers/<int:customer_id>")
    def customer(customer_id: int) -> Response:
        return jsonify(authenticated(sandbox).customers.get(customer_id) or abort(404))

    @bp.post("/customers")
    def create_customer() -> Any:
        retailer = authenticated(sandbox)
        body = request.get_json(force=True) or {}
        if not body.get("name"):
            return refuse("Tên khách hàng không được để trống")
        customer_id = sandbox.new_id()
        saved = save_customer(retailer, {"id": customer_id, "code": f"KH{customer_id:06d}", **body})
        return jsonify(saved)

    @bp.put("/customers/<int:customer_id>")
    def update_customer(customer_id: int) -> Any:
        retailer = authenticated(sandbox)
        current = retailer.customers.get(customer_id) or abort(404)
        return jsonify(save_customer(retailer, {**current, **(request.get_json(force=True) or {})}))

    @bp.get("/customers/group")
    def customer_groups() -> Response:
        return page(authenticated(sandbox).customer_groups)

    return bp


def matching(items: dict[int, dict[str, Any]], **equal: Any) -> list[dict[str, Any]]:
    """The items, by id, modified since `lastModifiedFrom` and equal to each filter given."""
    since = request.args.get("lastModifiedFrom")
    return [item for _, item in sorted(items.items())
            if (not since or after(item["modifiedDate"], since))
            and all(value is None or str(item.get(key)) == str(value) for key, value in equal.items())]  # fmt: skip


def order_problem(retailer: Retailer, body: dict[str, Any]) -> str | None:
    """Why KiotViet would refuse this order, in its words; None when it would not."""
    if not retailer.ordering_enabled:
        return "Thiết lập “Cho phép đặt hàng” đang không được bật."
    branch = body.get("branchId")
    if branch not in retailer.branches:
        return f"Chi nhánh {branch} không tồn tại"
    for line in body.get("orderDetails") or []:
        product = retailer.products.get(line.get("productId"))
        if product is None:
            return f"Sản phẩm {line.get('productCode')} không tồn tại"
        stock = next((i for i in product["inventories"] if i["branchId"] == branch), {"onHand": 0, "reserved": 0})
        if (
            not retailer.settings.get("AllowOrderWhenOutStock")
            and stock["onHand"] - stock["reserved"] < line["quantity"]
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

    @bp.post("/orders/<int:order_id>/status")
    def set_status(retailer: str, order_id: int) -> Response:
        found = shop(retailer)
        status = int((request.get_json(force=True) or {})["status"])
        order = found.orders.get(order_id) or abort(404)
        order.update(status=status, statusValue=STATUS_VALUES.get(status, "?"), modifiedDate=now_text())
        return jsonify(type="order.update", delivered=deliver(found, "order.update", [pascal(order)]))

    @bp.post("/customers/<int:customer_id>")
    def edit_customer(retailer: str, customer_id: int) -> Response:
        found = shop(retailer)
        current = found.customers.get(customer_id) or {"id": customer_id, "code": f"KH{customer_id:06d}"}
        current = {**current, **(request.get_json(force=True) or {}), "modifiedDate": now_text()}
        found.customers[customer_id] = current
        return jsonify(type="customer.update", delivered=deliver(found, "customer.update", [pascal(current)]))

    @bp.get("/orders")
    def all_orders(retailer: str) -> Response:
        return jsonify(list(shop(retailer).orders.values()))

    return bp
