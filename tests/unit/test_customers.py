from __future__ import annotations

import json
from typing import Any

import fakeredis
import pytest

from adapters.connections import Connection
from adapters.errors import TransientError
from adapters.links import LinkStore
from adapters.state import SyncState
from schemas.kiotviet_webhook import normalize_delivery
from tests.helpers import sample
from workers.context import ShopContext
from workers.customers import apply_kiotviet_customer, local_phone


class FlakyAbaha:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.customers: dict[int, dict[str, Any]] = {}

    def put_customer(self, kv_id: int, body: dict[str, Any]) -> int:
        if self.failures:
            self.failures -= 1
            raise TransientError("Abaha answered 503")
        self.customers[kv_id] = body
        return 900 + kv_id


class KiotViet:
    def customer(self, customer_id: int) -> dict[str, Any]:
        return {"id": customer_id}


@pytest.fixture
def ctx() -> ShopContext:
    redis = fakeredis.FakeRedis()
    connection = Connection("shop-42", "demo", "cid", 11)
    return ShopContext(connection, KiotViet(), FlakyAbaha(failures=1), SyncState(redis), LinkStore(redis))  # type: ignore[arg-type]


def customer_event() -> Any:
    body = sample("kiotviet/customer.update")
    (event,) = normalize_delivery(json.dumps(body).encode(), body, "shop-42", "2026-11-30T08:00:00+00:00").events
    return event


def test_a_write_that_failed_is_retried_not_taken_for_its_own_echo(ctx: ShopContext) -> None:
    event = customer_event()
    with pytest.raises(TransientError):
        apply_kiotviet_customer(event, ctx)
    assert apply_kiotviet_customer(event, ctx) == "applied"  # the retry
    assert ctx.abaha.customers[7001]["phone"] == "0912345678"  # type: ignore[attr-defined]
    assert apply_kiotviet_customer(event, ctx) == "echo"  # now it is known on both sides


@pytest.mark.parametrize("given", ["0912345678", "+84 912 345 678", "84912345678", "091-234-5678"])
def test_phone_numbers_are_compared_in_one_form(given: str) -> None:
    assert local_phone(given) == "0912345678"
