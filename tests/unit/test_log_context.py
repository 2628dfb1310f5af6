"""Log context: a `request_id` per request, answered in `X-Request-ID`; `job_id`, `shop_id` and
`event_id` per job; so one change is followed from its delivery to its write."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
import structlog
from flask.testing import FlaskClient

from adapters.inbox import event_queue
from tests.conftest import BRANCH, SHOP
from tests.fakes import FakeAbaha
from tests.helpers import connect_signed, sample, sign
from wiring import Services
from workers.job_context import job_fields

Logged = Callable[[str], list[dict[str, Any]]]
SECRET = base64.b64encode(b"the shop's webhook secret").decode()


@pytest.fixture(autouse=True)
def connected(services: Services) -> None:
    connect_signed(services, SHOP, BRANCH, SECRET)


def deliver(client: FlaskClient, delivery_id: str, headers: dict[str, str] | None = None) -> Any:
    body = sample("kiotviet/product.update")
    body["Id"] = delivery_id
    body["Notifications"][0]["Data"][0].update(MasterProductId=None, MasterUnitId=None)
    raw = json.dumps(body).encode()
    return client.post(f"/webhooks/kiotviet/{SHOP}", data=raw,
                       headers={"X-Hub-Signature": sign(raw, SECRET), **(headers or {})})  # fmt: skip


def test_a_sane_request_id_is_kept_and_answered(client: FlaskClient, logged: Logged) -> None:
    answer = deliver(client, "d1", {"X-Request-ID": "edge-7f3a.42"})
    assert answer.headers["X-Request-ID"] == "edge-7f3a.42"
    (accepted,) = logged("kiotviet.delivery_accepted")
    assert accepted["request_id"] == "edge-7f3a.42"


@pytest.mark.parametrize("given", [None, "", "has spaces in it", "x" * 65, "-leading-dash", "ü"])
def test_a_missing_or_odd_request_id_is_replaced_by_a_new_one(client: FlaskClient, given: str | None) -> None:
    answer = client.get("/healthz", headers={"X-Request-ID": given} if given is not None else {})
    made = answer.headers["X-Request-ID"]
    assert made != given and len(made) == 32 and int(made, 16) >= 0


def test_each_request_has_its_own_id_and_none_is_left_bound(client: FlaskClient) -> None:
    first = client.get("/healthz").headers["X-Request-ID"]
    second = client.get("/healthz").headers["X-Request-ID"]
    assert first != second
    assert "request_id" not in structlog.contextvars.get_contextvars()


def test_an_answer_the_guard_refuses_carries_its_request_id_too(client: FlaskClient) -> None:
    answer = client.get("/metrics", headers={"X-Request-ID": "probe-1"})
    assert (answer.status_code, answer.headers["X-Request-ID"]) == (401, "probe-1")


def test_one_change_is_followed_from_its_delivery_to_its_write(
    client: FlaskClient, work_off: Callable[[], int], abaha: FakeAbaha, logged: Logged
) -> None:
    deliver(client, "traced", {"X-Request-ID": "trace-me"})
    work_off()
    (accepted,) = logged("kiotviet.delivery_accepted")
    assert accepted["request_id"] == "trace-me"
    (event_id,) = accepted["event_ids"]
    (written,) = [w for w in logged("change.written") if w["entity"] == "product:3001"]
    assert written["event_id"] == event_id
    assert written["shop_id"] == SHOP and written["job_id"] and written["batch_id"]
    assert "request_id" not in written  # the worker runs outside the request
    (done,) = [d for d in logged("drain.done") if d["batch_id"] == written["batch_id"]]
    assert done["job_id"] == written["job_id"]
    assert 3001 in abaha.products
    assert structlog.contextvars.get_contextvars() == {}  # nothing of the job is left bound


def test_a_change_that_fails_names_its_event_and_the_job_kept_for_the_operator(
    client: FlaskClient, work_off: Callable[[], int], abaha: FakeAbaha, logged: Logged
) -> None:
    abaha.refused_products.add(3001)
    deliver(client, "refused")
    work_off()
    (accepted,) = logged("kiotviet.delivery_accepted")
    (failed,) = logged("change.failed")
    assert failed["event_id"] == accepted["event_ids"][0]
    assert failed["failed_job_id"] and failed["job_id"] != failed["failed_job_id"]  # the drain's, and the kept one's


@pytest.mark.parametrize("func, args, expected", [
    ("workers.drain.drain_shop", ["shop-7"], {"shop_id": "shop-7"}),
    ("workers.sync.sync_step", ["shop-7", "run-1", "products", 0], {"shop_id": "shop-7"}),
    ("workers.drain.apply_change", [{"id": "ev-1", "shop_id": "shop-7"}], {"event_id": "ev-1", "shop_id": "shop-7"}),
    ("workers.reconcile.reconcile_tick", ["a-planner-token"], {}),  # not a shop
])  # fmt: skip
def test_each_job_binds_its_id_and_what_it_is_about(services: Services, func: str, args: list[Any],
                                                   expected: dict[str, str]) -> None:  # fmt: skip
    job = event_queue(services.redis).enqueue(func, *args)
    assert job_fields(job) == {"job_id": job.id, **expected}
