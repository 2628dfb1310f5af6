"""The timing rules the job path relies on, checked on the constants and sessions themselves:
change one of them and the rule it breaks fails here, not in production."""

from __future__ import annotations

import fakeredis
import pytest
from rq.serializers import JSONSerializer

from adapters import http, inbox, keys, pending, state
from adapters.kiotviet import KiotVietClient
from adapters.kiotviet_auth import REFRESH_LOCK_SECONDS, TOKEN_EARLY_SECONDS, KiotVietAuth
from adapters.vault import Vault
from wiring import Services
from workers import apply, customers, drain, orders, reconcile
from workers.__main__ import ServiceWorker

ONE_TRY = sum(http.TIMEOUT)  # connect and read timeouts: the longest one try can take


@pytest.fixture
def auth() -> KiotVietAuth:
    return KiotVietAuth(fakeredis.FakeRedis(), Vault("k"), "https://id.example/connect/token")


def test_an_entity_lock_outlives_the_job_holding_it() -> None:
    # RQ stops a job after JOB_SECONDS; until then no other worker may take its entity
    assert state.LOCK_SECONDS > inbox.JOB_SECONDS
    # a job waiting for a lock gives up (and is retried) before RQ would stop it; a batch does not
    # wait long on one entity while it holds the others
    assert state.LOCK_WAIT_SECONDS < inbox.JOB_SECONDS and state.LOCK_WAIT_SECONDS <= 5
    # a change that finds its entity busy is tried again for longer than a dead worker holds a lock
    assert inbox.BUSY_TRIES * inbox.BUSY_SECONDS[0] > state.LOCK_SECONDS > drain.LEASE_MS / 1000


def test_a_batch_lease_survives_a_missed_renewal() -> None:
    assert drain.LEASE_MS / 1000 > 2 * drain.RENEW_SECONDS
    # the shop's running mark too; it lapses before the lease, so that a dead worker's shop
    # takes batches again while its own batch waits for its lease to run out
    assert drain.LEASE_MS > drain.RUNNING_MS > 2 * drain.RENEW_SECONDS * 1000


def test_a_batch_stops_starting_entities_early_enough_to_finish_within_the_job() -> None:
    assert apply.BATCH_SECONDS + ONE_TRY < inbox.JOB_SECONDS


@pytest.mark.parametrize("settle", [orders.SETTLE_SECONDS, customers.SETTLE_SECONDS], ids=["orders", "customers"])
def test_an_interrupted_create_is_settled_only_after_kiotviet_can_still_answer_it(
    settle: int, auth: KiotVietAuth
) -> None:
    client = KiotVietClient(base_url="https://public.kiotapi.com", retailer="shop", client_id="id",
                            client_secret="secret", auth=auth)  # fmt: skip
    longest_post = http.longest_call_seconds(client._session, "POST")
    assert longest_post == ONE_TRY  # a create is never sent twice by the session itself
    assert settle > longest_post


def test_the_token_refresh_lock_outlives_the_token_request(auth: KiotVietAuth) -> None:
    assert http.longest_call_seconds(auth._session, "POST") < REFRESH_LOCK_SECONDS
    # a token handed out just before its replacement is still good for a whole try
    assert TOKEN_EARLY_SECONDS > ONE_TRY


def test_a_lost_wake_up_is_noticed_within_a_few_ticks() -> None:
    assert reconcile.WAKE_AFTER_MS / 1000 > reconcile.TICK_SECONDS  # not woken while its drain is queued
    assert pending.DRAIN_FLAG_SECONDS > inbox.JOB_SECONDS  # a running drain's flag never lapses


def test_a_shorter_read_timeout_reaches_every_call(auth: KiotVietAuth) -> None:
    client = KiotVietClient(base_url="https://public.kiotapi.com", retailer="shop", client_id="id",
                            client_secret="secret", auth=auth, read_timeout=2)  # fmt: skip
    assert http.longest_call_seconds(client._session, "POST") == http.TIMEOUT[0] + 2


def test_a_call_waits_as_long_as_its_session_says(monkeypatch: pytest.MonkeyPatch) -> None:
    session, seen = http.make_session(("GET",), read_timeout=2), []
    monkeypatch.setattr(session, "request", lambda method, url, **kwargs: seen.append(kwargs["timeout"]))
    http.send(session, "KiotViet", "GET", "https://public.kiotapi.com/products")
    assert seen == [(http.TIMEOUT[0], 2.0)]


def test_a_dead_workers_batch_is_woken_by_any_workers_maintenance_without_the_scheduler(
    monkeypatch: pytest.MonkeyPatch, services: Services, redis: fakeredis.FakeRedis
) -> None:
    monkeypatch.setattr("workers.__main__.process_services", lambda: services)
    redis.zadd(keys.LEASES, {"shop-9\tdead-batch": 0})  # a batch whose worker died long ago
    queue = inbox.event_queue(redis)
    worker = ServiceWorker([queue], connection=redis, serializer=JSONSerializer)
    worker.run_maintenance_tasks()
    assert [(job.func_name, list(job.args)) for job in queue.jobs] == [(inbox.DRAIN_SHOP, ["shop-9"])]
