"""The console's pages with Flask's test client: the language, the connect form, what pages show."""

from __future__ import annotations

import re

import pytest
import responses
from flask.testing import FlaskClient

from adapters.syncruns import SyncRuns
from admin.console.syncing import percent
from tests.conftest import ADMIN_TOKEN
from tests.unit.console_support import (
    ABAHA_API_TOKEN,
    API,
    CLIENT_SECRET,
    connected,
    connection_form,
    kiotviet_answers,
    post_form,
    sign_in,
)
from wiring import Services

__all__ = ["connected"]  # a fixture these tests use
FOREIGN_HOOK = {"id": 77, "type": "product.update", "url": "https://plugin.example.vn/kv", "isActive": True}


def errors_beside(html: str, field: str) -> str:
    found = re.search(rf'<ul class="errors" data-errors-for="{field}"[^>]*>(.*?)</ul>', html, re.S)
    return found.group(1) if found else ""


def test_the_console_speaks_vietnamese_until_english_is_chosen(client: FlaskClient) -> None:
    login = client.get("/admin/login").get_data(as_text=True)
    assert '<html lang="vi">' in login and "Đăng nhập" in login
    assert post_form(client, "/admin/language", {"lang": "en", "next": "/admin/login"},
                     from_page="/admin/login").headers["Location"] == "/admin/login"  # fmt: skip
    english = client.get("/admin/login").get_data(as_text=True)
    assert '<html lang="en">' in english and "Sign in with the service's admin token" in english
    sign_in(client)
    assert "Connect a shop" in client.get("/admin/").get_data(as_text=True)  # the choice outlives signing in
    post_form(client, "/admin/language", {"lang": "vi"}, from_page="/admin/")
    assert "Kết nối cửa hàng" in client.get("/admin/").get_data(as_text=True)


def test_an_unknown_language_changes_nothing(client: FlaskClient) -> None:
    post_form(client, "/admin/language", {"lang": "fr"}, from_page="/admin/login")
    assert '<html lang="vi">' in client.get("/admin/login").get_data(as_text=True)


@responses.activate
def test_a_wrong_branch_is_shown_beside_the_branch_with_the_shops_branches_and_no_secret_comes_back(
    client: FlaskClient, services: Services
) -> None:
    kiotviet_answers()
    sign_in(client)
    answer = post_form(client, "/admin/shops/new", connection_form(branch_id="99"))
    html = answer.get_data(as_text=True)
    assert answer.status_code == 422
    assert errors_beside(html, "branch_id") == ("<li>Chi nhánh 99 không có trong KiotViet; các chi nhánh của cửa hàng: "
                                                "11 (Chi nhánh trung tâm), 12 (Chi nhánh Quận 3).</li>")  # fmt: skip
    assert '<option value="12"' in html and '<select id="branch_id"' in html
    assert CLIENT_SECRET not in html and ABAHA_API_TOKEN not in html
    assert services.connections.get("shop-7") is None


@responses.activate
def test_no_branch_yet_offers_the_branches_kiotviet_lists(client: FlaskClient) -> None:
    kiotviet_answers()
    sign_in(client)
    html = post_form(client, "/admin/shops/new", connection_form(branch_id="")).get_data(as_text=True)
    assert "Chọn chi nhánh để đồng bộ" in errors_beside(html, "branch_id")
    assert '<option value="11"' in html and CLIENT_SECRET not in html


def test_missing_fields_are_marked_beside_each_before_kiotviet_is_asked(client: FlaskClient) -> None:
    sign_in(client)
    answer = post_form(client, "/admin/shops/new", connection_form(retailer="Not A Name", client_secret=""))
    html = answer.get_data(as_text=True)
    assert answer.status_code == 422
    assert errors_beside(html, "retailer") == "<li>Chữ thường, chữ số và '-', như trong địa chỉ.</li>"
    assert errors_beside(html, "client_secret") == "<li>Bắt buộc.</li>"


@responses.activate
def test_a_save_shows_the_abaha_webhook_token_once_and_no_page_shows_a_secret_later(
    client: FlaskClient, services: Services
) -> None:
    kiotviet_answers()
    sign_in(client)
    saved = post_form(client, "/admin/shops/new", connection_form()).get_data(as_text=True)
    token = services.connections.readable_secrets("shop-7").abaha_webhook_token  # type: ignore[union-attr]
    assert f'<code id="abaha-token">{token}</code>' in saved
    assert "http://sync.test/webhooks/abaha/shop-7" in saved and "X-Abaha-Token" in saved
    assert CLIENT_SECRET not in saved and ABAHA_API_TOKEN not in saved
    SyncRuns(services.redis).start("shop-7", ["products"])
    for path in ["/admin/", "/admin/shops/shop-7/edit", "/admin/shops/shop-7/sync", "/admin/shops/shop-7/sync/progress",
                 "/admin/shops/shop-7/failed", "/admin/shops/shop-7/quarantine", "/admin/login"]:  # fmt: skip
        page = client.get(path).get_data(as_text=True)
        assert not [s for s in (CLIENT_SECRET, ABAHA_API_TOKEN, ADMIN_TOKEN, token) if s in page], path


@responses.activate
def test_editing_with_the_secrets_left_blank_keeps_the_stored_ones(client: FlaskClient, services: Services) -> None:
    kiotviet_answers()
    sign_in(client)
    post_form(client, "/admin/shops/new", connection_form())
    edit = client.get("/admin/shops/shop-7/edit").get_data(as_text=True)
    assert 'value="thoitrangmogi"' in edit and '<option value="11" selected' in edit.replace("\n", "")
    answer = post_form(client, "/admin/shops/shop-7/edit", connection_form(client_secret="", abaha_api_token="",
                                                                           branch_id="12"))  # fmt: skip
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert services.connections.get("shop-7").branch_id == 12  # type: ignore[union-attr]
    assert services.connections.readable_secrets("shop-7").client_secret == CLIENT_SECRET  # type: ignore[union-attr]


@responses.activate
def test_a_new_shop_cannot_overwrite_a_connected_one(client: FlaskClient, services: Services, connected: None) -> None:
    sign_in(client)
    answer = post_form(client, "/admin/shops/new", connection_form(shop_id="shop-42"))
    assert "Cửa hàng này đã được kết nối" in errors_beside(answer.get_data(as_text=True), "shop_id")
    assert services.connections.get("shop-42").retailer == "demo"  # type: ignore[union-attr]


@responses.activate
def test_a_type_held_by_another_integration_is_asked_about_in_words_and_taken_only_on_yes(
    client: FlaskClient, services: Services
) -> None:
    kiotviet_answers(hooks=[FOREIGN_HOOK])
    sign_in(client)
    asked = post_form(client, "/admin/shops/new", connection_form())
    html = asked.get_data(as_text=True)
    assert asked.status_code == 422
    assert ("KiotViet đang gửi product.update đến plugin.example.vn; chuyển về dịch vụ này? "
            "Tích hợp đó sẽ không nhận được nữa.") in html  # fmt: skip
    assert services.connections.get("shop-7") is None and CLIENT_SECRET not in html
    yes = post_form(client, "/admin/shops/new", connection_form(take_over_webhooks="y"))
    assert yes.status_code == 200
    assert "product.update was taken over from plugin.example.vn" in yes.get_data(as_text=True)
    assert any(c.request.method == "DELETE" and str(c.request.url).endswith("/webhooks/77") for c in responses.calls)


@responses.activate
def test_reading_branches_for_the_form_answers_them_as_json(client: FlaskClient) -> None:
    kiotviet_answers()
    sign_in(client)
    answer = post_form(client, "/admin/shops/check", connection_form(branch_id=""), from_page="/admin/shops/new")
    assert answer.get_json()["branches"] == [{"id": 11, "name": "Chi nhánh trung tâm"},
                                             {"id": 12, "name": "Chi nhánh Quận 3"}]  # fmt: skip
    assert CLIENT_SECRET not in answer.get_data(as_text=True)


@responses.activate
def test_credentials_kiotviet_refuses_are_named_beside_the_secret(client: FlaskClient) -> None:
    responses.post("http://kiotviet-id.test/connect/token", status=400, json={"error": "invalid_client"})
    sign_in(client)
    answer = post_form(client, "/admin/shops/check", connection_form(), from_page="/admin/shops/new")
    assert answer.get_json()["branches"] == [] and answer.get_json()["errors"]["client_secret"]
    assert not [c for c in responses.calls if str(c.request.url).startswith(API)]


def test_starting_a_sync_queues_the_chosen_entities_and_the_progress_reads_as_the_api(
    client: FlaskClient, services: Services, connected: None
) -> None:
    sign_in(client)
    started = post_form(client, "/admin/shops/shop-42/sync", {"entities": ["products", "pricebooks"]})
    assert started.status_code == 302
    run = client.get("/admin/shops/shop-42/sync/progress").get_json()
    assert run["state"] == "queued" and set(run["entities"]) == {"products", "pricebooks", "prices"}
    assert run["entities"]["products"] == {"done": 0, "total": None, "label": "Sản phẩm", "percent": None}
    assert "Đã bắt đầu đồng bộ toàn bộ." in client.get("/admin/shops/shop-42/sync").get_data(as_text=True)


def test_a_sync_with_nothing_chosen_is_refused_beside_the_choices(client: FlaskClient, connected: None) -> None:
    sign_in(client)
    answer = post_form(client, "/admin/shops/shop-42/sync", {})
    assert answer.status_code == 422
    assert errors_beside(answer.get_data(as_text=True), "entities") == "<li>Chọn ít nhất một mục.</li>"


@pytest.mark.parametrize(
    "counts, state, expected",
    [({"done": 50, "total": 200}, "running", 25), ({"done": 0, "total": None}, "running", None),
     ({"done": 0, "total": 0}, "running", 100), ({"done": 7, "total": None}, "done", 100),
     ({"done": 230, "total": 200}, "running", 100)],
)  # fmt: skip
def test_a_bar_shows_done_over_total_and_a_finished_run_with_nothing_to_do_is_full(
    counts: dict[str, int | None], state: str, expected: int | None
) -> None:
    assert percent(counts, state) == expected


def test_pages_of_an_unknown_shop_are_not_found(client: FlaskClient) -> None:
    sign_in(client)
    for path in ["/admin/shops/nope/edit", "/admin/shops/nope/sync", "/admin/shops/nope/failed",
                 "/admin/shops/nope/quarantine"]:  # fmt: skip
        assert client.get(path).status_code == 404, path


@responses.activate
def test_stored_secrets_are_kept_only_for_the_same_kiotviet_app(client: FlaskClient, services: Services) -> None:
    kiotviet_answers()
    sign_in(client)
    post_form(client, "/admin/shops/new", connection_form())
    changed = connection_form(client_id="another-app", client_secret="", abaha_api_token="")
    answer = post_form(client, "/admin/shops/shop-7/edit", changed)
    assert answer.status_code == 422
    assert errors_beside(answer.get_data(as_text=True), "client_secret") == "<li>Bắt buộc.</li>"
    assert services.connections.get("shop-7").client_id == "kv-client-id"  # type: ignore[union-attr]
