"""The connect and edit forms given bad values: empty, huge, wrong-typed, a branch that is no
number, script text. Each gets its message beside its field, nothing is saved, nothing is a 500,
and every value typed comes back escaped."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import responses
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.console_support import (
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
SCRIPT = '<script>alert("x")</script>'
ATTRIBUTE = '"><img src=x onerror=alert(1)>'
HUGE = "x" * 100_000
BAD_VALUES = [
    ("shop_id", ""), ("shop_id", "   "), ("shop_id", "s" * 65), ("shop_id", SCRIPT), ("shop_id", "shop 7"),
    ("shop_id", "shop\x00"), ("shop_id", HUGE),
    ("retailer", ""), ("retailer", "Not A Name"), ("retailer", SCRIPT), ("retailer", "a" * 64), ("retailer", HUGE),
    ("client_id", ""), ("client_id", HUGE), ("client_id", ATTRIBUTE + HUGE),
    ("client_secret", ""), ("client_secret", HUGE),
    ("branch_id", "abc"), ("branch_id", "-1"), ("branch_id", "1.5"), ("branch_id", "1e3"), ("branch_id", "9" * 13),
    ("branch_id", SCRIPT), ("branch_id", "11; DROP TABLE"), ("branch_id", "99"),
    ("surcharge_code", SCRIPT), ("surcharge_code", ATTRIBUTE), ("surcharge_code", HUGE),
    ("abaha_api_token", ""), ("abaha_api_token", HUGE),
]  # fmt: skip


def errors_beside(html: str, field: str) -> str:
    found = re.search(rf'<ul class="errors" data-errors-for="{field}"[^>]*>(.*?)</ul>', html, re.S)
    return found.group(1) if found else ""


def raw_markup_of(value: str, html: str) -> bool:
    """Whether the page holds the value's markup unescaped (only values holding `<` or `"` can)."""
    return any(c in value for c in '<"') and value in html


@pytest.fixture
def kiotviet_http() -> Iterator[responses.RequestsMock]:
    """KiotViet for a connect, with one surcharge code, counting the calls made."""
    with responses.mock:
        kiotviet_answers()
        responses.get(f"{API}/surchages", json={"total": 1, "data": [{"id": 1, "surchargeCode": "THK000001",
                                                                       "surchargeName": "Phí giao hàng"}]})  # fmt: skip
        yield responses.mock


@pytest.fixture
def signed_in(client: FlaskClient) -> FlaskClient:
    sign_in(client)
    return client


@pytest.mark.parametrize("field, value", BAD_VALUES, ids=[f"{f}={v[:12]!r}" for f, v in BAD_VALUES])
def test_a_bad_value_in_the_connect_form_is_named_beside_its_field_and_nothing_is_saved(
    signed_in: FlaskClient, services: Services, kiotviet_http: responses.RequestsMock, field: str, value: str
) -> None:
    answer = post_form(signed_in, "/admin/shops/new", connection_form(**{field: value}))
    html = answer.get_data(as_text=True)
    assert answer.status_code == 422, html[:500]
    assert errors_beside(html, field), f"no message beside {field}"
    assert services.connections.all() == []
    assert not raw_markup_of(value, html)
    assert CLIENT_SECRET not in html


@pytest.mark.parametrize("field, value", [(f, v) for f, v in BAD_VALUES if f not in ("shop_id", "client_secret",
                                                                                     "abaha_api_token")])  # fmt: skip
def test_a_bad_value_in_the_edit_form_changes_nothing_stored(
    signed_in: FlaskClient, services: Services, kiotviet_http: responses.RequestsMock, connected: None,
    field: str, value: str,
) -> None:  # fmt: skip
    before = (services.connections.get("shop-42"), services.connections.readable_secrets("shop-42"))
    form = {**connection_form(shop_id="shop-42", retailer="demo", client_id="cid"), field: value}
    answer = post_form(signed_in, "/admin/shops/shop-42/edit", form)
    html = answer.get_data(as_text=True)
    assert answer.status_code == 422, html[:500]
    assert errors_beside(html, field), f"no message beside {field}"
    assert (services.connections.get("shop-42"), services.connections.readable_secrets("shop-42")) == before
    assert not raw_markup_of(value, html)


def test_a_form_field_too_long_for_the_service_is_refused_before_kiotviet_is_asked(
    signed_in: FlaskClient, kiotviet_http: responses.RequestsMock
) -> None:
    post_form(signed_in, "/admin/shops/new", connection_form(client_id=HUGE))
    assert [c.request.url for c in kiotviet_http.calls] == []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    values=st.fixed_dictionaries(
        {
            name: st.text(max_size=30).map(lambda t: t + "<x-probe>")
            for name in (
                "shop_id",
                "retailer",
                "client_id",
                "client_secret",
                "branch_id",
                "surcharge_code",
                "abaha_api_token",
            )
        }
    )
)
def test_any_text_in_any_field_is_answered_without_a_500_and_comes_back_escaped(
    signed_in: FlaskClient, services: Services, kiotviet_http: responses.RequestsMock, values: dict[str, str]
) -> None:  # fmt: skip
    answer = post_form(signed_in, "/admin/shops/new", values)
    assert answer.status_code == 422
    assert "<x-probe>" not in answer.get_data(as_text=True)
    assert services.connections.all() == []
