"""The operator console as an operator uses it, in a real browser against the running service."""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass
from typing import Any

import pytest
import redis
import requests
from playwright.sync_api import Page, expect

from adapters.quarantine import QuarantineStore
from sandbox.abaha import AbahaShop
from sandbox.kiotviet_data import Retailer, demo_retailer, grow_catalogue
from sandbox.kiotviet_delivery import sign
from sandbox.stack import LocalStack
from tests.browser.conftest import screenshot, sign_in
from tests.helpers import sample, wait_for

pytestmark = pytest.mark.browser
_numbers = itertools.count(1)
_order_ids = itertools.count(70001)


@dataclass
class SandboxShop:
    """A shop as it exists before an operator connects it: its KiotViet retailer and Abaha side."""

    stack: LocalStack
    shop_id: str
    retailer: Retailer
    abaha: AbahaShop
    abaha_api_token: str

    @property
    def sandbox_url(self) -> str:
        assert self.stack.sandbox is not None
        return self.stack.sandbox.url

    def connection(self) -> requests.Response:
        return self.stack.admin("GET", f"/admin/connections/{self.shop_id}")


def sandbox_shop(stack: LocalStack, products: int = 0) -> SandboxShop:
    assert stack.sandbox is not None
    number = next(_numbers)
    retailer = stack.sandbox.kiotviet.add_retailer(demo_retailer(f"console{number}", 600000000 + number))
    if products:
        grow_catalogue(retailer, products=products)
    shop_id, token = f"console-{number}", f"abaha-api-token-{number}"
    return SandboxShop(stack, shop_id, retailer, stack.sandbox.abaha.add_shop(shop_id, token), token)


def fill_connection(page: Page, shop: SandboxShop, branch: str) -> None:
    """The guide's fields, typed in; the branch picked from the list when the form offers one."""
    if page.locator("#shop_id").get_attribute("readonly") is None:
        page.fill("#shop_id", shop.shop_id)
    page.fill("#retailer", shop.retailer.name)
    page.fill("#client_id", shop.retailer.client_id)
    page.fill("#client_secret", shop.retailer.client_secret)
    if page.locator("select#branch_id").count():
        page.select_option("#branch_id", branch)
    else:
        page.fill("#branch_id", branch)
    page.fill("#surcharge_code", "THK000001")
    page.fill("#abaha_api_token", shop.abaha_api_token)


def save(page: Page) -> None:
    page.get_by_role("button", name="Lưu kết nối").click()


def expect_saved(page: Page, shop: SandboxShop) -> None:
    """The saved page; its Abaha webhook settings go where the shop would paste them."""
    expect(page.get_by_role("heading", name=f"Đã lưu kết nối: {shop.shop_id}")).to_be_visible()
    shop.abaha.webhook_url = page.locator("#abaha-url").inner_text()
    shop.abaha.webhook_token = page.locator("#abaha-token").inner_text()
    assert page.locator("#abaha-header").inner_text() == "X-Abaha-Token"
    assert shop.abaha.webhook_url.endswith(f"/webhooks/abaha/{shop.shop_id}") and len(shop.abaha.webhook_token) > 20


def connect_through_form(page: Page, shop: SandboxShop) -> None:
    """The operator's usual path: the credentials, then the branch picked from what KiotViet lists."""
    page.goto("/admin/shops/new")
    fill_connection(page, shop, "")
    page.get_by_role("button", name="Đọc chi nhánh từ KiotViet").click()
    expect(page.locator("select#branch_id option")).to_have_text(
        ["— chọn chi nhánh —", "Chi nhánh trung tâm (11)", "Chi nhánh Quận 3 (12)"]
    )
    page.select_option("#branch_id", "11")
    save(page)
    expect_saved(page, shop)


def secrets_of(shop: SandboxShop) -> list[str]:
    return [shop.retailer.client_secret, shop.abaha_api_token, shop.stack.env["ADMIN_TOKEN"]]


def test_a_page_asked_for_without_signing_in_sends_the_browser_to_the_login_page(page: Page, stack: LocalStack) -> None:
    page.goto("/admin/shops/new")
    expect(page).to_have_url(re.compile(r"/admin/login\?next=/admin/shops/new$"))
    screenshot(page, "login")
    page.fill("#token", "not-the-token")
    page.get_by_role("button", name="Đăng nhập").click()
    expect(page.locator("#errors-token")).to_have_text("Mã quản trị không đúng.")
    page.fill("#token", stack.env["ADMIN_TOKEN"])
    page.get_by_role("button", name="Đăng nhập").click()
    expect(page.get_by_role("heading", name="Kết nối cửa hàng")).to_be_visible()
    (cookie,) = page.context.cookies()
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (True, "Strict", "/admin")
    assert stack.env["ADMIN_TOKEN"] not in cookie["value"]
    page.get_by_role("button", name="English").click()
    expect(page.get_by_role("heading", name="Connect a shop")).to_be_visible()
    page.get_by_role("button", name="Tiếng Việt").click()
    expect(page.get_by_role("heading", name="Kết nối cửa hàng")).to_be_visible()
    page.get_by_role("button", name="Đăng xuất").click()
    page.goto("/admin/")
    expect(page).to_have_url(re.compile(r"/admin/login\?next=/admin/$"))


def test_a_shop_connected_through_the_form_syncs_to_100_percent_and_its_products_reach_abaha(
    page: Page, stack: LocalStack
) -> None:
    shop = sandbox_shop(stack, products=250)
    sign_in(page, stack)
    page.get_by_role("link", name="Kết nối cửa hàng").first.click()
    fill_connection(page, shop, "99")
    save(page)
    beside_branch = page.locator("#errors-branch_id")
    expect(beside_branch).to_have_text(
        "Chi nhánh 99 không có trong KiotViet; "
        "các chi nhánh của cửa hàng: 11 (Chi nhánh trung tâm), 12 (Chi nhánh Quận 3)."
    )
    expect(page.locator("select#branch_id option")).to_have_count(3)  # the prompt and the shop's two branches
    assert not any(secret in page.content() for secret in secrets_of(shop))
    assert shop.connection().status_code == 404  # nothing saved
    screenshot(page, "connect-form-error")
    fill_connection(page, shop, "11")
    save(page)
    expect_saved(page, shop)
    page.get_by_role("link", name="Đồng bộ", exact=True).last.click()
    page.get_by_role("button", name="Đồng bộ").click()
    expect(page.locator("[data-run-state]")).to_have_text("xong")
    for row in page.locator("[data-entity]").all():
        expect(row.locator(".pct")).to_have_text("100%")
    expect(page.locator('[data-entity="products"] .count')).to_have_text("252 / 252")
    screenshot(page, "sync-progress")
    assert set(shop.abaha.products) == {str(pid) for pid in shop.retailer.products}


def test_an_order_kiotviet_refuses_shows_its_sentence_and_retry_after_the_fix_makes_one_order(
    page: Page, stack: LocalStack
) -> None:
    shop = sandbox_shop(stack)
    sign_in(page, stack)
    connect_through_form(page, shop)
    shop.retailer.settings["AllowOrderWhenOutStock"] = False
    order = place_order(shop, quantity=50)  # the branch has less
    wait_for(lambda: shop.connection().json()["state"]["counts"].get("failed") == 1)
    page.goto("/admin/")
    card = page.locator(f'[data-shop="{shop.shop_id}"]')
    expect(card.locator(".badge")).to_have_text("Đang lỗi")
    screenshot(page, "shops")
    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing wider than the screen
    screenshot(page, "shops-phone")
    page.set_viewport_size({"width": 1280, "height": 900})
    card.get_by_role("link", name="Lỗi").click()
    failure = page.locator(".failure")
    expect(failure).to_have_count(1)
    expect(failure.locator(".message")).to_contain_text("Cho phép đặt hàng khi hết tồn kho")
    expect(failure.locator(".message")).not_to_contain_text("Traceback")
    expect(failure.locator(".meta")).to_contain_text("1 lần thử")
    screenshot(page, "what-failed")
    failure.locator("summary").click()
    expect(failure.locator("pre")).to_contain_text("Traceback")
    shop.retailer.settings["AllowOrderWhenOutStock"] = True
    failure.get_by_role("button", name="Thử lại").click()
    expect(page.locator(".flash")).to_have_text("Đã đưa 1 thay đổi vào hàng đợi lại.")
    wait_for(lambda: shop.abaha.orders[str(order["id"])].get("kiotviet"))
    made = [o for o in shop.retailer.orders.values() if f"[abaha:{order['id']}]" in (o.get("description") or "")]
    assert len(made) == 1
    page.reload()
    expect(page.locator(".empty")).to_have_text("Không có lỗi: không thay đổi nào chờ thử lại.")


def test_a_webhook_type_held_by_another_integration_is_taken_over_only_after_the_operator_says_yes(
    page: Page, stack: LocalStack
) -> None:
    shop = sandbox_shop(stack)
    hooks = f"{shop.sandbox_url}/_sandbox/kiotviet/{shop.retailer.name}/webhooks"
    requests.post(hooks, json={"type": "product.update", "url": "https://plugin.example.vn/kv"}, timeout=10)
    sign_in(page, stack)
    page.goto("/admin/shops/new")
    fill_connection(page, shop, "11")
    save(page)
    question = page.get_by_role("alertdialog")
    expect(question).to_contain_text(
        "KiotViet đang gửi product.update đến plugin.example.vn; chuyển về dịch vụ này? "
        "Tích hợp đó sẽ không nhận được nữa."
    )
    assert shop.connection().status_code == 404  # nothing saved until the answer
    screenshot(page, "take-over-question")
    fill_connection(page, shop, "11")  # the secrets are typed again: they are never put back into the page
    question.get_by_role("button", name="Có, chuyển về đây").click()
    expect_saved(page, shop)
    expect(page.locator(".warnings")).to_contain_text("product.update was taken over from plugin.example.vn")
    (held,) = [h for h in requests.get(hooks, timeout=10).json() if h["type"] == "product.update"]
    assert held["url"] == f"{stack.url}/webhooks/kiotviet/{shop.shop_id}"


def test_a_form_posted_from_another_site_is_refused_and_starts_nothing(page: Page, stack: LocalStack) -> None:
    shop = sandbox_shop(stack)
    sign_in(page, stack)
    connect_through_form(page, shop)
    target = f"{stack.url}/admin/shops/{shop.shop_id}/sync"
    attack = (f'<form id="f" method="post" action="{target}"><input name="entities" value="products"></form>'
              '<script>document.getElementById("f").submit()</script>')  # fmt: skip
    page.route("http://attacker.test/**", lambda route: route.fulfill(content_type="text/html", body=attack))
    with page.expect_response(target) as answer:
        page.goto("http://attacker.test/")
    assert answer.value.status == 403
    expect(page.locator("body")).to_contain_text("cross-site request refused")
    assert stack.admin("GET", f"/admin/connections/{shop.shop_id}/sync").status_code == 404  # no sync started


def test_quarantined_deliveries_show_their_reason_and_those_that_pass_a_recheck_are_admitted(
    page: Page, stack: LocalStack
) -> None:
    shop = sandbox_shop(stack)
    sign_in(page, stack)
    connect_through_form(page, shop)
    (hook,) = [h for h in shop.retailer.webhooks.values() if h["type"] == "product.update"]
    real_secret, hook["secret"] = hook["secret"], "a-secret-this-service-never-gave"
    change_product(shop, 3001, {"name": "Tên ký sai"})  # bad signature: quarantined for good
    hook["secret"] = real_secret
    keep_passing_delivery(shop, real_secret)
    page.goto(f"/admin/shops/{shop.shop_id}/quarantine")
    deliveries = page.locator(".delivery")
    expect(deliveries).to_have_count(2)
    expect(deliveries.locator("h2")).to_contain_text(["SECRET_KEY changed", "bad signature"])
    screenshot(page, "quarantine")
    page.get_by_role("button", name="Kiểm tra lại và nhận tất cả").click()
    expect(page.locator(".flash.ok")).to_have_text("Đã nhận 1 lần gửi.")
    expect(page.locator(".flash.error")).to_have_text("Vẫn bị từ chối: bad signature")
    expect(deliveries).to_have_count(1)
    wait_for(lambda: (shop.abaha.products.get("3002") or {}).get("name") == "Tên sau khi sửa")
    assert (shop.abaha.products.get("3001") or {}).get("name") != "Tên ký sai"


def place_order(shop: SandboxShop, quantity: int) -> dict[str, Any]:
    """A customer orders on the shop's Abaha website; Abaha posts it to the service."""
    number = next(_order_ids)
    item = {"sku": "SP000123", "kv_product_id": 3001, "name": "Áo", "quantity": quantity, "unit_price": 1000,
            "discount": 0}  # fmt: skip
    order = {**sample("abaha/order.created")["data"], "id": number, "code": f"DH{number}", "items": [item],
             "discount": 0, "total": 40000 + quantity * 1000}  # fmt: skip
    answer = requests.post(f"{shop.sandbox_url}/_sandbox/abaha/shops/{shop.shop_id}/orders", json=order, timeout=10)
    assert answer.json()["delivered"] == 202, answer.text
    return order


def change_product(shop: SandboxShop, product_id: int, change: dict[str, Any], deliver: bool = True) -> Any:
    url = f"{shop.sandbox_url}/_sandbox/kiotviet/{shop.retailer.name}/products/{product_id}"
    answer = requests.post(url, json=change, params={} if deliver else {"deliver": "0"}, timeout=10)
    answer.raise_for_status()
    return answer.json()


def keep_passing_delivery(shop: SandboxShop, secret: str) -> None:
    """A rightly signed delivery kept as the endpoint keeps one it could not check then (the shop's
    secrets were unreadable under another SECRET_KEY): a re-check now admits it."""
    body = change_product(shop, 3002, {"name": "Tên sau khi sửa"}, deliver=False)["delivery"]["body"]
    raw = json.dumps(body, ensure_ascii=False).encode()
    store = QuarantineStore(redis.Redis.from_url(shop.stack.env["REDIS_URL"]))
    reason = "the shop's webhook secrets cannot be read (SECRET_KEY changed): save the connection again"
    store.keep(shop.shop_id, reason, raw, signed=False, details={"signature": sign(raw, secret)})
