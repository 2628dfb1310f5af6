"""Signing in to the console: the login form, the session cookie, CSRF, and other sites refused."""

from __future__ import annotations

import base64
import json
import zlib

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.http import parse_set_header
from werkzeug.test import TestResponse

from adapters.syncruns import SyncRuns
from admin.console.session import session_key
from app import create_app
from config import Settings
from tests.conftest import ADMIN_TOKEN
from tests.unit.console_support import SAME_ORIGIN, connected, csrf_token, post_form, sign_in
from wiring import Services, local_secret, services_on

COOKIE = "sync_console"
__all__ = ["connected"]  # a fixture these tests use


def cookie_header(answer_headers: list[str]) -> str:
    (found,) = [h for h in answer_headers if h.startswith(f"{COOKIE}=")]
    return found


def session_payload(cookie_value: str) -> dict[str, object]:
    """What the signed (not encrypted) cookie holds, as anyone holding it can read it."""
    body = cookie_value.split(".")[1] if cookie_value.startswith(".") else cookie_value.split(".")[0]
    raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    payload: dict[str, object] = json.loads(zlib.decompress(raw) if cookie_value.startswith(".") else raw)
    return payload


@pytest.mark.parametrize("path", ["/admin/", "/admin/shops/new", "/admin/shops/shop-42/failed"])
def test_a_console_page_asked_for_without_signing_in_redirects_to_login(client: FlaskClient, path: str) -> None:
    answer = client.get(path)
    assert answer.status_code == 302
    assert answer.headers["Location"] == f"/admin/login?next={path}"


def test_the_json_api_still_answers_401_and_bearer_and_basic_still_open_it(client: FlaskClient) -> None:
    assert client.get("/admin/connections").status_code == 401
    assert client.get("/admin/connections", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).status_code == 200
    basic = "Basic " + base64.b64encode(f"ops:{ADMIN_TOKEN}".encode()).decode()
    assert client.get("/admin/", headers={"Authorization": basic}).status_code == 200


def test_signing_in_with_the_token_opens_the_console_and_signing_out_closes_it(client: FlaskClient) -> None:
    answer = sign_in(client)
    assert answer.status_code == 302 and answer.headers["Location"] == "/admin/"
    shops = client.get("/admin/")
    assert shops.status_code == 200 and "Đăng xuất" in shops.get_data(as_text=True)
    assert client.get("/admin/rq/").status_code == 200  # the dashboard too, linked from the console
    assert client.get("/admin/connections").status_code == 200
    assert post_form(client, "/admin/logout", {}, from_page="/admin/").status_code == 302
    assert client.get("/admin/").status_code == 302


def test_signing_in_returns_to_the_page_asked_for_but_never_to_another_site(client: FlaskClient) -> None:
    assert sign_in_to(client, "/admin/shops/new").headers["Location"] == "/admin/shops/new"
    client.delete_cookie(COOKIE, path="/admin")
    assert sign_in_to(client, "https://evil.example/admin").headers["Location"] == "/admin/"
    client.delete_cookie(COOKIE, path="/admin")
    assert sign_in_to(client, "//evil.example/admin").headers["Location"] == "/admin/"


def sign_in_to(client: FlaskClient, next_path: str) -> TestResponse:
    token = csrf_token(client.get("/admin/login", query_string={"next": next_path}))
    return client.post("/admin/login", data={"csrf_token": token, "token": ADMIN_TOKEN, "next": next_path},
                       headers=SAME_ORIGIN)  # fmt: skip


def test_a_wrong_token_is_refused_with_a_message_and_no_session(client: FlaskClient) -> None:
    answer = sign_in(client, token="not-the-token")
    assert answer.status_code == 401
    assert "Mã quản trị không đúng." in answer.get_data(as_text=True)
    assert client.get("/admin/").status_code == 302


def test_a_form_without_its_csrf_token_is_refused_and_changes_nothing(
    client: FlaskClient, services: Services, connected: None
) -> None:
    assert client.post("/admin/login", data={"token": ADMIN_TOKEN}, headers=SAME_ORIGIN).status_code == 400
    sign_in(client)
    answer = client.post("/admin/shops/shop-42/sync", data={"entities": "products"}, headers=SAME_ORIGIN)
    assert answer.status_code == 400
    assert "Biểu mẫu đã hết hạn" in answer.get_data(as_text=True)
    wrong = client.post("/admin/shops/shop-42/sync", data={"entities": "products", "csrf_token": "forged"},
                        headers=SAME_ORIGIN)  # fmt: skip
    assert wrong.status_code == 400
    assert SyncRuns(services.redis).describe("shop-42") is None


@pytest.mark.parametrize("headers", [{"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"},
                                     {"Sec-Fetch-Site": "same-site"}, {}])  # fmt: skip
def test_a_form_posted_from_another_site_is_refused_even_with_the_session_and_token(
    client: FlaskClient, services: Services, connected: None, headers: dict[str, str]
) -> None:
    sign_in(client)
    token = csrf_token(client.get("/admin/shops/shop-42/sync"))
    answer = client.post("/admin/shops/shop-42/sync", data={"entities": "products", "csrf_token": token},
                         headers=headers)  # fmt: skip
    assert answer.status_code == 403
    assert SyncRuns(services.redis).describe("shop-42") is None


def test_an_unsigned_cross_site_post_is_refused_not_redirected(client: FlaskClient) -> None:
    answer = client.post("/admin/shops/shop-42/sync", data={"entities": "products"},
                         headers={"Sec-Fetch-Site": "cross-site"})  # fmt: skip
    assert answer.status_code == 403


def test_the_session_cookie_is_httponly_samesite_strict_and_holds_no_secret(client: FlaskClient) -> None:
    answer = sign_in(client)
    header = cookie_header(answer.headers.getlist("Set-Cookie"))
    flags = {part.strip().split("=")[0].lower() for part in header.split(";")[1:]}
    assert {"httponly", "path"} <= flags and "secure" not in flags
    assert "SameSite=Strict" in header and "Path=/admin" in header
    value = header.split(";")[0].split("=", 1)[1]
    payload = session_payload(value)
    assert set(payload) <= {"_permanent", "signed_in", "csrf_token", "lang"}  # a fresh session: no old CSRF token
    assert ADMIN_TOKEN not in json.dumps(payload) and ADMIN_TOKEN not in value


@pytest.mark.parametrize("how", ["wsgi.url_scheme", "X-Forwarded-Proto"])
def test_the_session_cookie_is_secure_when_served_over_https(app: Flask, how: str) -> None:
    if how == "wsgi.url_scheme":
        client = app.test_client()
        token = csrf_token(client.get("/admin/login", base_url="https://localhost"))
        over_https = {"Origin": "https://localhost", "Referer": "https://localhost/admin/login"}  # CSRF's https check
        answer = client.post("/admin/login", base_url="https://localhost",
                             data={"csrf_token": token, "token": ADMIN_TOKEN}, headers=over_https)  # fmt: skip
    else:
        answer = sign_in(app.test_client(), **{"X-Forwarded-Proto": "https"})
    assert answer.status_code == 302
    header = cookie_header(answer.headers.getlist("Set-Cookie"))
    assert "secure" in {part.strip().lower() for part in header.split(";")}


def test_a_session_signed_in_under_an_earlier_admin_token_no_longer_opens_the_console(
    client: FlaskClient, services: Services
) -> None:
    sign_in(client)
    cookie = client.get_cookie(COOKIE, path="/admin")
    assert cookie is not None
    rotated = services_on(
        services.settings.with_overrides({"admin_token": "a-new-token"}), services.redis, "redis://fake"
    )
    other = create_app(services=rotated).test_client()
    other.set_cookie(COOKIE, cookie.value, path="/admin")
    assert other.get("/admin/").status_code == 302


def test_the_session_key_is_derived_from_secret_key_or_the_local_one(settings: Settings, tmp_path: object) -> None:
    key = session_key(settings)
    assert len(key) == 32 and settings.secret_key is not None and settings.secret_key.encode() not in key
    assert session_key(settings.with_overrides({"secret_key": "another"})) != key
    local = Settings.from_env({"LOCAL_STATE_DIR": str(tmp_path)})
    generated = local_secret(str(tmp_path), "secret_key")
    assert session_key(local) == session_key(local.with_overrides({"secret_key": generated}))


def test_vary_and_no_store_keep_console_pages_out_of_caches(client: FlaskClient) -> None:
    sign_in(client)
    answer = client.get("/admin/")
    assert answer.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]
    assert "cookie" in {v.lower() for v in parse_set_header(answer.headers.get("Vary", ""))}
