"""KiotViet's public API for one shop: the `Retailer` header, the shared GET budget, paging, and
answers parsed into the dataclasses of `schemas/`."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import requests
import structlog
from marshmallow import Schema, ValidationError

from adapters.budget import WEBHOOK, RequestBudget
from adapters.errors import KiotVietNotFound, KiotVietRejected, TransientError
from adapters.http import TRANSIENT_STATUSES, make_session, retry_after, send
from adapters.kiotviet_auth import KiotVietAuth
from adapters.kiotviet_errors import translate
from schemas import kiotviet as kv
from schemas import kiotviet_sales as sales

log = structlog.get_logger(__name__)
T = TypeVar("T")
PAGE_SIZE = 100  # KiotViet's maximum
DEFAULT_PAUSE_SECONDS = 60  # after a 429 without Retry-After
MAX_BUDGET_WAIT = 5.0  # what a webhook-driven fetch may wait for a token
PROVIDER = "KiotViet"


class BudgetExhausted(TransientError):
    """The shop's GET budget has no token now; `retry_after` says when it will."""


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list: the items that read, how many there were, the list's total, the ids
    removed since `lastModifiedFrom` (when asked), and why any item did not read."""

    items: tuple[T, ...]
    count: int
    total: int
    removed_ids: tuple[int, ...] = ()
    problems: tuple[str, ...] = ()

    def next_offset(self, offset: int) -> int | None:
        following = offset + self.count
        return following if self.count and following < self.total else None


class KiotVietClient:
    """One shop's calls to KiotViet."""

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
        read_timeout: float | None = None,
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
                                                statuses=TRANSIENT_STATUSES - {429},
                                                read_timeout=read_timeout)  # fmt: skip

    def __repr__(self) -> str:
        return f"KiotVietClient(retailer={self._retailer!r})"

    # -- the shop and its settings

    def branches(self) -> list[sales.KvBranch]:
        return self._all("/branches", sales.BranchSchema())

    def settings(self) -> sales.KvSettings:
        settings: sales.KvSettings = sales.SettingsSchema().load(self._request("GET", "/settings"))
        return settings

    def surcharges(self) -> list[sales.KvSurcharge]:
        """Other fees; the current guide spells the path `/surchages`, older ones `/surcharges`."""
        try:
            body = self._request("GET", "/surchages", params={"pageSize": PAGE_SIZE})
        except KiotVietNotFound:
            body = self._request("GET", "/surcharges", params={"pageSize": PAGE_SIZE})
        return list(load_items(sales.SurchargeSchema(), body.get("data") or [])[0])

    def webhooks(self) -> list[sales.KvWebhook]:
        """Every webhook of the retailer, ours or another integration's."""
        body = self._request("GET", "/webhooks")
        return list(load_items(sales.WebhookSchema(), kv.lower_keys(body).get("data") or [])[0])

    def register_webhook(self, kind: str, url: str, secret: str) -> int | str:
        body = {"Webhook": {"Type": kind, "Url": url, "IsActive": True, "Secret": secret,
                            "Description": "Abaha sync"}}  # fmt: skip
        answer = kv.lower_keys(self._request("POST", "/webhooks", json=body))
        webhook_id = answer.get("id") or (answer.get("data") or {}).get("id")
        if webhook_id is None:
            raise KiotVietRejected(f"KiotViet registered no id for webhook {kind}", 200)
        return int(webhook_id) if str(webhook_id).isdigit() else str(webhook_id)

    def delete_webhook(self, webhook_id: int | str) -> None:
        with contextlib.suppress(KiotVietNotFound):  # already gone
            self._request("DELETE", f"/webhooks/{webhook_id}")

    # -- catalog

    def product(self, product_id: int) -> kv.KvProduct | None:
        """The product with its stock and prices; None when KiotViet has no such product."""
        try:
            body = self._request("GET", f"/products/{product_id}",
                                 params={"includeInventory": "true", "includePricebook": "true"})  # fmt: skip
        except KiotVietNotFound:
            return None
        return _complete(kv.ProductSchema().load(body))

    def product_by_code(self, code: str) -> kv.KvProduct:
        body = self._request("GET", f"/products/code/{quote(code, safe='')}")
        return _complete(kv.ProductSchema().load(body))

    def products_page(self, offset: int, *, since: str | None = None, by_modified: bool = False,
                      removed: bool = False) -> Page[kv.KvProduct]:  # fmt: skip
        params = {"includeInventory": "true", "includePricebook": "true", **_order(by_modified), **_since(since)}
        if removed:
            params["includeRemoveIds"] = "true"
        page = self._page("/products", kv.ProductSchema(), offset, params)
        return replace(page, items=tuple(_complete(p) for p in page.items))

    def stock_page(self, branch_id: int, offset: int, *, since: str | None = None) -> Page[kv.KvStockRow]:
        """Stock rows changed since `since`, oldest change first."""
        params = {"branchIds": branch_id, **_order(True), **_since(since)}
        return self._page("/productOnHands", kv.StockRowSchema(), offset, params)

    def category(self, category_id: int) -> kv.KvCategory | None:
        try:
            body = self._request("GET", f"/categories/{category_id}")
        except KiotVietNotFound:
            return None
        category: kv.KvCategory = kv.CategorySchema().load(body.get("data", body) if isinstance(body, dict) else {})
        return category

    def categories_page(self, offset: int, *, since: str | None = None, removed: bool = False,
                        by_modified: bool = False) -> Page[kv.KvCategory]:  # fmt: skip
        params = {"hierachicalData": "false", **_order(by_modified), **_since(since)}
        if removed:
            params["includeRemoveIds"] = "true"
        return self._page("/categories", kv.CategorySchema(), offset, params)

    def price_books_page(self, offset: int) -> Page[kv.KvPriceBook]:
        return self._page("/pricebooks", kv.PriceBookSchema(), offset, {})

    def price_books(self) -> list[kv.KvPriceBook]:
        return self._all("/pricebooks", kv.PriceBookSchema())

    def prices_page(self, book_id: int, offset: int) -> Page[kv.KvPrice]:
        """One page of a price book's prices."""
        page = self._page(f"/pricebooks/{book_id}", kv.PriceSchema(), offset, {}, {"pricebookid": book_id})
        return page

    # -- customers and orders

    def customer(self, customer_id: int) -> sales.KvCustomer | None:
        try:
            body = self._request("GET", f"/customers/{customer_id}", params={"includeCustomerGroup": "true"})
        except KiotVietNotFound:
            return None
        customer: sales.KvCustomer = sales.CustomerSchema().load(body)
        return customer

    def customers_by_phone(self, phone: str) -> list[sales.KvCustomer]:
        return list(self._page("/customers", sales.CustomerSchema(), 0, {"contactNumber": phone}).items)

    def customers_by_code(self, code: str) -> list[sales.KvCustomer]:
        return list(self._page("/customers", sales.CustomerSchema(), 0, {"code": code}).items)

    def customers_page(self, offset: int, *, since: str | None = None, by_modified: bool = False,
                       with_groups: bool = False) -> Page[sales.KvCustomer]:  # fmt: skip
        params: dict[str, Any] = {**_order(by_modified), **_since(since)}
        if with_groups:
            params["includeCustomerGroup"] = "true"
        return self._page("/customers", sales.CustomerSchema(), offset, params)

    def create_customer(self, body: dict[str, Any]) -> sales.KvCreated:
        created: sales.KvCreated = sales.CreatedSchema().load(self._request("POST", "/customers", json=body))
        return created

    def update_customer(self, customer_id: int, body: dict[str, Any]) -> None:
        self._request("PUT", f"/customers/{customer_id}", json=body)

    def customer_groups(self) -> list[sales.KvCustomerGroup]:
        return self._all("/customers/group", sales.CustomerGroupSchema())

    def customer_groups_page(self, offset: int) -> Page[sales.KvCustomerGroup]:
        return self._page("/customers/group", sales.CustomerGroupSchema(), offset, {})

    def order(self, order_id: int) -> sales.KvOrder | None:
        try:
            body = self._request("GET", f"/orders/{order_id}")
        except KiotVietNotFound:
            return None
        order: sales.KvOrder = sales.OrderSchema().load(body)
        return order

    def orders_page(self, branch_id: int, offset: int, *, since: str | None = None,
                    by_modified: bool = True) -> Page[sales.KvOrder]:  # fmt: skip
        params = {"branchIds": branch_id, **_order(by_modified), **_since(since)}
        return self._page("/orders", sales.OrderSchema(), offset, params)

    def create_order(self, body: dict[str, Any]) -> sales.KvCreated:
        """POST /orders once (never retried in place); KiotViet answers the new id and code."""
        created: sales.KvCreated = sales.CreatedSchema().load(self._request("POST", "/orders", json=body))
        return created

    # -- the transport

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call the API; answer the JSON body or raise a translated error."""
        token = self._auth.token(self._client_id, self._client_secret)
        response = self._send(method, path, token, **kwargs)
        if response.status_code == 401:
            token = self._auth.token(self._client_id, self._client_secret, stale=token)
            response = self._send(method, path, token, **kwargs)
        if response.status_code == 429 and self._budget is not None:
            self._budget.pause(self._retailer, retry_after(response) or DEFAULT_PAUSE_SECONDS)
        return translate(method, path, response)

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

    def _page(self, path: str, schema: Schema, offset: int, params: dict[str, Any],
              extra: dict[str, Any] | None = None) -> Page[Any]:  # fmt: skip
        body = self._request("GET", path, params={**params, "pageSize": PAGE_SIZE, "currentItem": offset})
        raw = body.get("data") or [] if isinstance(body, dict) else []
        items, problems = load_items(schema, raw, extra)
        removed = tuple(kv.read_removed_ids(body)) if isinstance(body, dict) else ()
        return Page(items, len(raw), int(body.get("total") or 0), removed, problems)

    def _all(self, path: str, schema: Schema) -> list[Any]:
        found: list[Any] = []
        offset: int | None = 0
        while offset is not None:
            page = self._page(path, schema, offset, {})
            found += page.items
            offset = page.next_offset(offset)
        return found


def load_items(
    schema: Schema, raw: Iterable[Any], extra: dict[str, Any] | None = None
) -> tuple[tuple[Any, ...], tuple[str, ...]]:
    """Each item that reads; the others are described, not fatal to the page."""
    items, problems = [], []
    for item in raw:
        try:
            items.append(schema.load({**item, **extra} if extra and isinstance(item, dict) else item))
        except (ValidationError, TypeError, ValueError) as exc:
            ident = item.get("id") if isinstance(item, dict) else None
            problems.append(f"item {ident}: {getattr(exc, 'messages', exc)}")
    return tuple(items), tuple(problems)


def _complete(product: kv.KvProduct) -> kv.KvProduct:
    """A product as the API answers it: a link it does not carry, the row does not have (only
    a webhook body may leave links out without meaning it)."""
    return replace(product, links_given=True)


def _order(by_modified: bool) -> dict[str, str]:
    return {"orderBy": "modifiedDate" if by_modified else "id", "orderDirection": "Asc"}


def _since(since: str | None) -> dict[str, str]:
    return {"lastModifiedFrom": since} if since else {}
