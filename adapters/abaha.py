"""The Abaha API (`abaha-api.md` §1): writes keyed by KiotViet ids, so repeating one is harmless."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import requests
from marshmallow import Schema, ValidationError

from adapters.errors import AbahaNotFound, AbahaRejected, TransientError
from adapters.http import is_transient, make_session, retry_after, send
from schemas.abaha import AbahaCustomer, CustomerSchema, OrderSchema
from schemas.customers import local_phone

PROVIDER = "Abaha"
PRICES_PER_CALL = 500
PRODUCTS_PER_BATCH = 100


@dataclass(frozen=True)
class ItemResult:
    """Abaha's answer for one item of a batch call."""

    kv_id: int
    status: str  # "ok", "not_found" or "error"
    error: str | None = None


@dataclass(frozen=True)
class ListPage:
    """A page of orders or customers changed since a time, and the number of the next page."""

    items: tuple[Any, ...]
    next_page: int | None
    problems: tuple[str, ...] = ()


class AbahaClient:
    """One shop's calls to Abaha."""

    def __init__(self, *, base_url: str, shop_id: str, api_token: str, session: requests.Session | None = None,
                 read_timeout: float | None = None) -> None:  # fmt: skip
        self._base = f"{base_url.rstrip('/')}/v1/shops/{shop_id}"
        self._token = api_token
        # every Abaha write is keyed, so all of them may be retried in place
        self._session = session or make_session(
            retry_methods=("GET", "PUT", "PATCH", "DELETE"), read_timeout=read_timeout
        )

    def __repr__(self) -> str:
        return f"AbahaClient(base={self._base!r})"

    def put_category(self, kv_id: int, body: dict[str, Any]) -> None:
        self._request("PUT", f"/categories/{kv_id}", json=body)

    def delete_category(self, kv_id: int) -> None:
        self._request("DELETE", f"/categories/{kv_id}", missing_ok=True)

    def put_product(self, kv_id: int, body: dict[str, Any]) -> None:
        self._request("PUT", f"/products/{kv_id}", json=body)

    def put_products(self, items: Sequence[dict[str, Any]]) -> list[ItemResult]:
        """Upsert products (each body with its `kv_id`), 100 a call; Abaha's result per item."""
        return self._batch("PUT", items)

    def patch_products(self, items: Sequence[dict[str, Any]]) -> list[ItemResult]:
        """Change some fields of products (each with its `kv_id`), 100 a call."""
        return self._batch("PATCH", items)

    def patch_product(self, kv_id: int, body: dict[str, Any]) -> None:
        self._request("PATCH", f"/products/{kv_id}", json=body)

    def put_price_list(self, kv_id: int, body: dict[str, Any]) -> None:
        self._request("PUT", f"/price-lists/{kv_id}", json=body)

    def delete_price_list(self, kv_id: int) -> None:
        self._request("DELETE", f"/price-lists/{kv_id}", missing_ok=True)

    def put_prices(self, kv_id: int, prices: Sequence[dict[str, Any]]) -> None:
        for start in range(0, len(prices), PRICES_PER_CALL):
            chunk = list(prices[start : start + PRICES_PER_CALL])
            self._request("PUT", f"/price-lists/{kv_id}/prices", json={"prices": chunk})

    def delete_price(self, kv_id: int, product_kv_id: int) -> None:
        self._request("DELETE", f"/price-lists/{kv_id}/prices/{product_kv_id}", missing_ok=True)

    def link_order(self, abaha_order_id: int, kv_order_id: int, kv_order_code: str | None) -> None:
        body = {"kv_order_id": kv_order_id, "kv_order_code": kv_order_code}
        self._request("PUT", f"/orders/{abaha_order_id}/kiotviet", json=body)

    def set_order_status(self, abaha_order_id: int, body: dict[str, Any]) -> None:
        """Completed / Cancelled; a 409 `status_final` raises AbahaRejected with that code."""
        self._request("PUT", f"/orders/{abaha_order_id}/status", json=body)

    def orders_page(self, since: str, page: int = 1) -> ListPage:
        """Orders changed since `since` (inclusive), oldest change first."""
        return self._list("/orders", OrderSchema(), {"updated_since": since, "page": page})

    def customers_page(self, since: str, page: int = 1) -> ListPage:
        return self._list("/customers", CustomerSchema(), {"updated_since": since, "page": page})

    def customers_by_phone(self, phone: str) -> list[AbahaCustomer]:
        """The shop's customers with this phone number, in whatever form Abaha holds it."""
        found = self._list("/customers", CustomerSchema(), {"phone": phone}).items
        return [c for c in found if local_phone(c.phone) == local_phone(phone)]

    def put_customer_group(self, kv_id: int, body: dict[str, Any]) -> None:
        self._request("PUT", f"/customer-groups/{kv_id}", json=body)

    def put_customer(self, kv_id: int, body: dict[str, Any]) -> int:
        """Create or update the customer linked to KiotViet's `kv_id`; answer Abaha's id."""
        answer = self._request("PUT", f"/customers/by-kiotviet/{kv_id}", json=body)
        return int(answer["id"])

    def _batch(self, method: str, items: Sequence[dict[str, Any]]) -> list[ItemResult]:
        results: list[ItemResult] = []
        for start in range(0, len(items), PRODUCTS_PER_BATCH):
            chunk = list(items[start : start + PRODUCTS_PER_BATCH])
            answer = self._request(method, "/products:batch", json={"items": chunk})
            given = {int(r["kv_id"]): r for r in answer.get("results") or [] if isinstance(r, dict) and "kv_id" in r}
            for item in chunk:
                found = given.get(int(item["kv_id"]))
                if found is None:  # Abaha left it out: not known to have been written
                    results.append(ItemResult(int(item["kv_id"]), "error", "Abaha gave no result for it"))
                else:
                    results.append(ItemResult(int(item["kv_id"]), str(found.get("status")), found.get("error")))
        return results

    def _list(self, path: str, schema: Schema, params: dict[str, Any]) -> ListPage:
        answer = self._request("GET", path, params={**params, "per_page": 100})
        items, problems = [], []
        for raw in answer.get("data") or []:
            try:
                items.append(schema.load(raw))
            except ValidationError as exc:
                ident = raw.get("id") if isinstance(raw, dict) else None
                problems.append(f"Abaha item {ident}: {exc.messages}")
        following = answer.get("next_page")
        return ListPage(tuple(items), int(following) if following else None, tuple(problems))

    def _request(self, method: str, path: str, *, missing_ok: bool = False, **kwargs: Any) -> Any:
        """Call Abaha; a 404 is success when `missing_ok` (deleting what is already gone)."""
        headers = {"Authorization": f"Bearer {self._token}", "Content-Type": "application/json"}
        response = send(self._session, PROVIDER, method, self._base + path, headers=headers, **kwargs)
        if response.status_code == 404 and missing_ok:
            return {}
        return _translate(method, path, response)


def _translate(method: str, path: str, response: requests.Response) -> Any:
    status = response.status_code
    if 200 <= status < 300:
        return response.json() if response.content.strip() else {}
    code, message = _error(response)
    if is_transient(status):
        raise TransientError(f"Abaha answered {status} to {method} {path}", retry_after(response))
    if status == 401:
        raise AbahaRejected(
            "Abaha refused the connection's API token (401); save the connection again with "
            "the shop's current Abaha API token", status, code)  # fmt: skip
    error = AbahaNotFound if status == 404 else AbahaRejected
    raise error(f"Abaha refused {method} {path}: {message or code or status}", status, code)


def _error(response: requests.Response) -> tuple[str | None, str | None]:
    try:
        error = (response.json() or {}).get("error") or {}
    except ValueError:
        return None, response.text[:300] or None
    return error.get("code"), error.get("message")
