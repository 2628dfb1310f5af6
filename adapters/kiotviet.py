"""KiotViet's public API: a shared token, the `Retailer` header, paging, error translation."""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import redis
import requests
import structlog

from adapters.budget import WEBHOOK, RequestBudget
from adapters.errors import KiotVietNotFound, KiotVietRejected, PermanentError, TransientError
from adapters.http import TRANSIENT_STATUSES, make_session, retry_after, send
from adapters.vault import Vault
from schemas.kiotviet import KvProduct, ProductSchema, lower_keys

log = structlog.get_logger(__name__)


class BudgetExhausted(TransientError):
    """The shop's GET budget has no token now; `retry_after` says when it will."""


PAGE_SIZE = 100  # KiotViet's maximum
DEFAULT_PAUSE_SECONDS = 60  # after a 429 without Retry-After
MAX_BUDGET_WAIT = 5.0  # what a webhook-driven fetch may wait for a token
TOKEN_EARLY_SECONDS = 60
PROVIDER = "KiotViet"


class KiotVietAuth:
    """Client-credentials tokens, cached in Redis so every process of a deployment shares one."""

    def __init__(
        self, redis_client: redis.Redis, vault: Vault, token_url: str, session: requests.Session | None = None
    ) -> None:
        self._redis = redis_client
        self._vault = vault
        self._token_url = token_url
        self._session = session or make_session(retry_methods=("POST",))

    def token(self, client_id: str, client_secret: str, stale: str | None = None) -> str:
        """A valid token; `stale` is one KiotViet just refused, to be replaced once."""
        # keyed by both: a wrong secret must not be validated by a token the right one got
        key = "sync:kvtoken:" + hashlib.sha256(f"{client_id}\0{client_secret}".encode()).hexdigest()[:32]
        cached = self._cached(key)
        if cached and cached != stale:
            return cached
        with self._redis.lock(key + ":refresh", timeout=30, blocking_timeout=30):
            cached = self._cached(key)  # another process may have refreshed meanwhile
            if cached and cached != stale:
                return cached
            token, lifetime = self._fetch(client_id, client_secret)
            ttl = max(lifetime - TOKEN_EARLY_SECONDS, 1)
            self._redis.set(key, self._vault.encrypt(token), ex=ttl)
            log.info("kiotviet.token_refreshed", expires_in=lifetime)
            return token

    def _cached(self, key: str) -> str | None:
        sealed = self._redis.get(key)
        if not isinstance(sealed, bytes):
            return None
        try:
            return self._vault.decrypt(sealed.decode())
        except PermanentError:
            return None  # sealed under another SECRET_KEY: fetch a new one

    def _fetch(self, client_id: str, client_secret: str) -> tuple[str, int]:
        form = {
            "client_id": client_id,
            "client_secret": client_secret,
            "grant_type": "client_credentials",
            # the guide spells it `scopes`, working clients send `scope`: send both
            "scopes": "PublicApi.Access",
            "scope": "PublicApi.Access",
        }
        response = send(self._session, PROVIDER, "POST", self._token_url, data=form)
        if response.status_code in TRANSIENT_STATUSES:
            raise TransientError("KiotViet's token service is unavailable", retry_after(response))
        if response.status_code != 200:
            raise KiotVietRejected(
                "KiotViet refused the Client ID / client secret (mã bảo mật); check them in "
                "KiotViet's Thiết lập cửa hàng → Thiết lập kết nối API",
                response.status_code,
                _message(response),
            )
        body = response.json()
        return str(body["access_token"]), int(body.get("expires_in") or 3600)


class KiotVietClient:
    """One shop's view of KiotViet's public API."""

    def __init__(
        self,
        *,
        base_url: str,
        retailer: str,
        client_id: str,
        client_secret: str,
        auth: KiotVietAuth,
        session: requests.Session | None = None,
        budget: RequestBudget | None = None,
        priority: str = WEBHOOK,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._budget = budget
        self._priority = priority
        self._retailer = retailer
        self._client_id = client_id
        self._client_secret = client_secret
        self._auth = auth
        # POST is not retried in place: creating an order twice is worse than failing once; a
        # 429 is not either: it pauses the shop's budget and the job is retried later
        self._session = session or make_session(retry_methods=("GET", "PUT", "DELETE"),
                                                statuses=TRANSIENT_STATUSES - {429})  # fmt: skip

    def __repr__(self) -> str:
        return f"KiotVietClient(retailer={self._retailer!r})"

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call the API; answer the JSON body or raise a translated error."""
        token = self._auth.token(self._client_id, self._client_secret)
        response = self._send(method, path, token, **kwargs)
        if response.status_code == 401:
            token = self._auth.token(self._client_id, self._client_secret, stale=token)
            response = self._send(method, path, token, **kwargs)
        if response.status_code == 429 and self._budget is not None:
            self._budget.pause(self._retailer, retry_after(response) or DEFAULT_PAUSE_SECONDS)
        return _translate(method, path, response)

    def _spend_budget(self) -> None:
        """Wait briefly for a token of the shop's GET budget, or fail transiently."""
        if self._budget is None:
            return
        deadline = time.monotonic() + (MAX_BUDGET_WAIT if self._priority == WEBHOOK else 0)
        while True:
            wait = self._budget.take(self._retailer, self._priority)
            if wait == 0:
                return
            if time.monotonic() + wait > deadline:
                raise BudgetExhausted(f"KiotViet request budget of {self._retailer} is spent for now", wait)
            time.sleep(wait)

    def _send(self, method: str, path: str, token: str, **kwargs: Any) -> requests.Response:
        if method == "GET":
            self._spend_budget()
        headers = {"Retailer": self._retailer, "Authorization": f"Bearer {token}"}
        return send(self._session, PROVIDER, method, self._base + path, headers=headers, **kwargs)

    def pages(self, path: str, params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Every page of a list, PAGE_SIZE items at a time."""
        for page, _ in self.pages_from(path, params, 0):
            yield page

    def pages_from(self, path: str, params: dict[str, Any] | None, start: int) -> Iterator[tuple[dict[str, Any], int]]:
        """The pages of a list from item `start`, each with the offset the next one starts at."""
        offset = start
        while True:
            page = self.request("GET", path, params={**(params or {}), "pageSize": PAGE_SIZE, "currentItem": offset})
            count = len(page.get("data") or [])
            offset += count
            yield page, offset
            if count == 0 or offset >= int(page.get("total") or 0):
                return

    def branches(self) -> list[dict[str, Any]]:
        return [item for page in self.pages("/branches") for item in page.get("data") or []]

    def settings(self) -> dict[str, Any]:
        body = self.request("GET", "/settings")
        settings: dict[str, Any] = lower_keys(body.get("data", body) if isinstance(body, dict) else {})
        return settings

    def surcharges(self) -> list[dict[str, Any]]:
        """Other fees; the current guide spells the path `/surchages`, older ones `/surcharges`."""
        try:
            body = self.request("GET", "/surchages", params={"pageSize": PAGE_SIZE})
        except KiotVietNotFound:
            body = self.request("GET", "/surcharges", params={"pageSize": PAGE_SIZE})
        return list(body.get("data") or [])

    def product(self, product_id: int) -> KvProduct:
        body = self.request("GET", f"/products/{product_id}", params={"includeInventory": "true"})
        product: KvProduct = ProductSchema().load(body)
        return product

    def product_by_code(self, code: str) -> KvProduct:
        body = self.request("GET", f"/products/code/{quote(code, safe='')}")
        product: KvProduct = ProductSchema().load(body)
        return product

    def create_order(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /orders once (never retried in place); KiotViet answers the new id and code."""
        answer: dict[str, Any] = lower_keys(self.request("POST", "/orders", json=body))
        return answer.get("data") if isinstance(answer.get("data"), dict) else answer  # type: ignore[return-value]

    def order(self, order_id: int) -> dict[str, Any]:
        answer: dict[str, Any] = lower_keys(self.request("GET", f"/orders/{order_id}"))
        return answer

    def customers_by_phone(self, phone: str) -> list[dict[str, Any]]:
        answer = self.request("GET", "/customers", params={"contactNumber": phone, "pageSize": PAGE_SIZE})
        return [lower_keys(item) for item in answer.get("data") or []]

    def customer(self, customer_id: int) -> dict[str, Any]:
        answer: dict[str, Any] = lower_keys(
            self.request("GET", f"/customers/{customer_id}", params={"includeCustomerGroup": "true"})
        )
        return answer

    def create_customer(self, body: dict[str, Any]) -> dict[str, Any]:
        answer: dict[str, Any] = lower_keys(self.request("POST", "/customers", json=body))
        return answer.get("data") if isinstance(answer.get("data"), dict) else answer  # type: ignore[return-value]

    def update_customer(self, customer_id: int, body: dict[str, Any]) -> None:
        self.request("PUT", f"/customers/{customer_id}", json=body)

    def customer_groups(self) -> list[dict[str, Any]]:
        return [lower_keys(item) for page in self.pages("/customers/group") for item in page.get("data") or []]

    def register_webhook(self, kind: str, url: str, secret: str) -> int | str:
        body = {"Webhook": {"Type": kind, "Url": url, "IsActive": True, "Secret": secret,
                            "Description": "Abaha sync"}}  # fmt: skip
        answer = lower_keys(self.request("POST", "/webhooks", json=body))
        webhook_id = answer.get("id") or (answer.get("data") or {}).get("id")
        if webhook_id is None:
            raise KiotVietRejected(f"KiotViet registered no id for webhook {kind}", 200)
        return int(webhook_id) if str(webhook_id).isdigit() else str(webhook_id)

    def delete_webhook(self, webhook_id: int | str) -> None:
        with contextlib.suppress(KiotVietNotFound):  # already gone
            self.request("DELETE", f"/webhooks/{webhook_id}")


def _translate(method: str, path: str, response: requests.Response) -> Any:
    status = response.status_code
    if 200 <= status < 300:
        return response.json() if response.content.strip() else {}
    message = _message(response)
    if status in TRANSIENT_STATUSES:
        raise TransientError(f"KiotViet answered {status} to {method} {path}", retry_after(response))
    if status == 404:
        raise KiotVietNotFound(f"KiotViet has no {path}", status, message)
    if status in (401, 403):
        raise KiotVietRejected(
            f"KiotViet refused the connection's credentials ({status}); save the connection "
            "again with a valid Client ID and client secret", status, message)  # fmt: skip
    raise KiotVietRejected(f"KiotViet refused {method} {path}: {message or status}", status, message)


def _message(response: requests.Response) -> str | None:
    """KiotViet's own wording: `responseStatus.message`, or a bare `message`."""
    try:
        body = lower_keys(response.json())
    except ValueError:
        return response.text[:300] or None
    if not isinstance(body, dict):
        return None
    status = body.get("responsestatus") or {}
    return status.get("message") or body.get("message") or body.get("error_description") or body.get("error")
