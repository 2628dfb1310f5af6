from __future__ import annotations

from typing import Any

import fakeredis
import pytest
import responses
from responses import matchers

from adapters.abaha import AbahaClient
from adapters.budget import BACKGROUND, BudgetPolicy, RequestBudget
from adapters.errors import AbahaRejected, KiotVietNotFound, KiotVietRejected, TransientError
from adapters.http import make_session
from adapters.kiotviet import BudgetExhausted, KiotVietClient
from adapters.kiotviet_auth import KiotVietAuth
from adapters.vault import Vault
from schemas.kiotviet_sales import KvSettings, KvSurcharge

API = "http://kiotviet.test"
TOKEN_URL = "http://kiotviet-id.test/connect/token"
ABAHA = "http://abaha.test"


def fast_session(methods: tuple[str, ...]) -> object:
    return make_session(retry_methods=methods, backoff=0)


@pytest.fixture
def redis() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


def kiotviet(redis: fakeredis.FakeRedis) -> KiotVietClient:
    auth = KiotVietAuth(redis, Vault("k"), TOKEN_URL, session=fast_session(("POST",)))  # type: ignore[arg-type]
    return KiotVietClient(base_url=API, retailer="demo", client_id="cid", client_secret="csecret", auth=auth,
                          session=fast_session(("GET", "PUT", "DELETE")))  # type: ignore[arg-type]  # fmt: skip


def token_answer(value: str) -> dict[str, Any]:
    return {"access_token": value, "expires_in": 86400, "token_type": "Bearer"}


@responses.activate
def test_token_is_fetched_once_and_shared_by_clients_through_redis(redis: fakeredis.FakeRedis) -> None:
    token = responses.post(TOKEN_URL, json=token_answer("kv-access-token-1"), match=[matchers.urlencoded_params_matcher(
        {"client_id": "cid", "client_secret": "csecret", "grant_type": "client_credentials",
         "scopes": "PublicApi.Access", "scope": "PublicApi.Access"})])  # fmt: skip
    expected = {"Retailer": "demo", "Authorization": "Bearer kv-access-token-1"}
    responses.get(f"{API}/branches", json={"total": 1, "data": [{"id": 11}]}, match=[matchers.header_matcher(expected)])
    assert [b.id for b in kiotviet(redis).branches()] == [11]
    assert [b.id for b in kiotviet(redis).branches()] == [11]  # another process, same Redis
    assert token.call_count == 1
    ttl = redis.ttl(next(iter(redis.scan_iter("sync:kvtoken:*"))))
    assert 86400 - 60 - 5 < ttl <= 86400 - 60  # refreshed a minute early
    stored = [redis.get(k) for k in redis.scan_iter("sync:kvtoken:*")]
    assert stored and not [s for s in stored if isinstance(s, bytes) and b"kv-access-token-1" in s]  # encrypted


@responses.activate
def test_a_401_refreshes_the_token_once_and_retries(redis: fakeredis.FakeRedis) -> None:
    token = responses.post(TOKEN_URL, json=token_answer("t1"))
    responses.get(f"{API}/settings", status=401, match=[matchers.header_matcher({"Authorization": "Bearer t1"})])
    client = kiotviet(redis)
    client._auth.token("cid", "csecret")  # cache t1
    responses.replace(responses.POST, TOKEN_URL, json=token_answer("t2"))
    responses.get(f"{API}/settings", json={"AllowOrderWhenOutStock": True},
                  match=[matchers.header_matcher({"Authorization": "Bearer t2"})])  # fmt: skip
    assert client.settings() == KvSettings(allow_order_when_out_of_stock=True)
    assert token.call_count == 1
    assert str(responses.calls[-2].request.url).endswith("/connect/token")


@responses.activate
def test_a_refusal_carries_kiotviets_own_message(redis: fakeredis.FakeRedis) -> None:
    responses.post(TOKEN_URL, json=token_answer("t1"))
    message = "Không đủ số lượng tồn kho cho sản phẩm SP000123"
    responses.post(f"{API}/orders", status=400, json={"responseStatus": {"errorCode": "x", "message": message}})
    with pytest.raises(KiotVietRejected) as caught:
        kiotviet(redis).create_order({})
    assert caught.value.kiotviet_message == message
    assert message in str(caught.value)


@responses.activate
def test_wrong_credentials_are_a_permanent_error_naming_what_to_check(redis: fakeredis.FakeRedis) -> None:
    responses.post(TOKEN_URL, status=400, json={"error": "invalid_client"})
    with pytest.raises(KiotVietRejected, match="Client ID / client secret"):
        kiotviet(redis).branches()


@responses.activate
def test_kiotviet_5xx_is_retried_then_succeeds(redis: fakeredis.FakeRedis) -> None:
    responses.post(TOKEN_URL, json=token_answer("t1"))
    branches = responses.get(f"{API}/branches", status=503)
    client = kiotviet(redis)
    responses.add_callback(responses.GET, f"{API}/branches", callback=lambda r: (200, {}, '{"total":0,"data":[]}'))
    assert client.branches() == []
    assert branches.call_count == 1


@responses.activate
def test_kiotviet_still_failing_is_transient_with_retry_after(redis: fakeredis.FakeRedis) -> None:
    responses.post(TOKEN_URL, json=token_answer("t1"))
    responses.get(f"{API}/products/1", status=503, headers={"Retry-After": "0"})
    with pytest.raises(TransientError) as caught:
        kiotviet(redis).product(1)
    assert caught.value.retry_after == 0
    assert len([c for c in responses.calls if "/products/1" in str(c.request.url)]) == 4  # 1 + 3 retries


@responses.activate
def test_a_429_pauses_only_that_shops_budget(redis: fakeredis.FakeRedis) -> None:
    responses.post(TOKEN_URL, json=token_answer("t1"))
    responses.get(f"{API}/products/1", status=429, headers={"Retry-After": "120"})
    budget = RequestBudget(redis)
    auth = KiotVietAuth(redis, Vault("k"), TOKEN_URL)
    client = KiotVietClient(base_url=API, retailer="busy", client_id="cid", client_secret="s", auth=auth,
                            budget=budget, priority=BACKGROUND)  # fmt: skip
    with pytest.raises(TransientError):
        client.product(1)
    assert len([c for c in responses.calls if "/products/1" in str(c.request.url)]) == 1  # not retried in place
    with pytest.raises(BudgetExhausted) as caught:
        client.product(1)
    assert 110 < (caught.value.retry_after or 0) <= 120
    assert budget.take("another-shop", BACKGROUND) == 0


@responses.activate
def test_surcharges_fall_back_to_the_older_spelling(redis: fakeredis.FakeRedis) -> None:
    responses.post(TOKEN_URL, json=token_answer("t1"))
    responses.get(f"{API}/surchages", status=404)
    responses.get(f"{API}/surcharges", json={"data": [{"id": 1, "surchargeCode": "THK1"}]})
    assert kiotviet(redis).surcharges() == [KvSurcharge(1, "THK1")]


@responses.activate
def test_a_missing_entity_is_none_or_not_found(redis: fakeredis.FakeRedis) -> None:
    responses.post(TOKEN_URL, json=token_answer("t1"))
    responses.get(f"{API}/products/9", status=404)
    responses.get(f"{API}/products/code/NOPE", status=404)
    assert kiotviet(redis).product(9) is None
    with pytest.raises(KiotVietNotFound):
        kiotviet(redis).product_by_code("NOPE")


@pytest.mark.parametrize("status", [501, 505, 507, 520, 521, 522, 523, 524])
@responses.activate
def test_any_5xx_is_transient_never_a_refusal(redis: fakeredis.FakeRedis, status: int) -> None:
    responses.post(TOKEN_URL, json=token_answer("t1"))
    responses.post(f"{API}/orders", status=status)
    with pytest.raises(TransientError):
        kiotviet(redis).create_order({})
    assert len([c for c in responses.calls if str(c.request.url).endswith("/orders")]) == 1  # never retried in place


def abaha() -> AbahaClient:
    session = make_session(retry_methods=("GET", "PUT", "PATCH", "DELETE"), backoff=0)
    return AbahaClient(base_url=ABAHA, shop_id="shop-42", api_token="abaha-token", session=session)


@responses.activate
def test_abaha_503_then_200_is_applied() -> None:
    failing = responses.put(f"{ABAHA}/v1/shops/shop-42/categories/1", status=503)
    abaha_client = abaha()
    responses.add_callback(responses.PUT, f"{ABAHA}/v1/shops/shop-42/categories/1", callback=lambda r: (200, {}, "{}"))
    abaha_client.put_category(1, {"name": "Áo", "parent_kv_id": None})
    assert failing.call_count == 1
    assert responses.calls[-1].request.headers["Authorization"] == "Bearer abaha-token"


@responses.activate
def test_abaha_delete_of_what_is_gone_is_success() -> None:
    responses.delete(f"{ABAHA}/v1/shops/shop-42/categories/1", status=404, json={"error": {"code": "not_found"}})
    abaha().delete_category(1)
    assert len(responses.calls) == 1


@responses.activate
def test_abaha_401_is_permanent_and_says_to_fix_the_connection() -> None:
    responses.put(f"{ABAHA}/v1/shops/shop-42/products/1", status=401, json={"error": {"code": "unauthorized"}})
    with pytest.raises(AbahaRejected, match="save the connection again"):
        abaha().put_product(1, {})


@responses.activate
def test_abaha_validation_error_is_permanent_with_abahas_message() -> None:
    responses.put(f"{ABAHA}/v1/shops/shop-42/products/1", status=422,
                  json={"error": {"code": "invalid", "message": "sku is required"}})  # fmt: skip
    with pytest.raises(AbahaRejected, match="sku is required") as caught:
        abaha().put_product(1, {})
    assert caught.value.code == "invalid"
    assert len(responses.calls) == 1  # not retried


@responses.activate
def test_abaha_429_past_retries_is_transient() -> None:
    responses.put(f"{ABAHA}/v1/shops/shop-42/price-lists/1", status=429, headers={"Retry-After": "0"})
    with pytest.raises(TransientError):
        abaha().put_price_list(1, {"name": "x", "active": True})


def test_vault_round_trips_and_refuses_another_key() -> None:
    sealed = Vault("one").encrypt("client-secret")
    assert "client-secret" not in sealed
    assert Vault("one").decrypt(sealed) == "client-secret"
    with pytest.raises(Exception, match="SECRET_KEY changed"):
        Vault("two").decrypt(sealed)


def test_background_work_stops_at_the_reserve_while_webhook_fetches_go_on(redis: fakeredis.FakeRedis) -> None:
    policy = BudgetPolicy(hourly=200)  # a burst of 10 tokens, 4 kept for webhooks
    budget = RequestBudget(redis, policy)
    granted = 0
    while budget.take("shop", BACKGROUND) == 0:
        granted += 1
    assert granted == policy.burst - policy.background_reserve
    assert [budget.take("shop", "webhook") for _ in range(policy.background_reserve)] == [0] * 4
    assert budget.take("shop", "webhook") > 0  # the bucket is empty now


class Clock:
    """What Redis's TIME says, moved by the test (fakeredis reads `time.time()`)."""

    def __init__(self, start: float) -> None:
        self.now = start

    def time(self) -> float:
        return self.now


def test_the_bucket_never_allows_more_than_the_hourly_limit_in_any_rolling_hour(
    redis: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(1_800_000_000.0)
    monkeypatch.setattr("fakeredis.commands_mixins.server_mixin.time", clock)
    policy = BudgetPolicy(hourly=600)
    budget = RequestBudget(redis, policy)
    granted: list[float] = []
    for _ in range(3 * 3600):  # three hours of a client that takes every token it can, every second
        while budget.take("greedy", "webhook") == 0:
            granted.append(clock.now)
        clock.now += 1
    assert len(granted) > 3 * 550  # it was not simply refused
    for start in granted:
        in_hour = sum(1 for t in granted if start <= t < start + 3600)
        assert in_hour <= policy.hourly
