"""The Abaha API (`abaha-api.md` §1): writes keyed by KiotViet ids, so repeating one is harmless."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import requests

from adapters.errors import AbahaNotFound, AbahaRejected, TransientError
from adapters.http import TRANSIENT_STATUSES, make_session, retry_after, send

PROVIDER = "Abaha"
PRICES_PER_CALL = 500
PRODUCTS_PER_BATCH = 100


class AbahaClient:
    """One shop's calls to Abaha."""

    def __init__(self, *, base_url: str, shop_id: str, api_token: str, session: requests.Session | None = None) -> None:
        self._base = f"{base_url.rstrip('/')}/v1/shops/{shop_id}"
        self._token = api_token
        # every Abaha write is keyed, so all of them may be retried in place
        self._session = session or make_session(retry_methods=("GET", "PUT", "PATCH", "DELETE"))

    def __repr__(self) -> str:
        return f"AbahaClient(base={self._base!r})"

    def request(self, method: str, path: str, *, missing_ok: bool = False, **kwargs: Any) -> Any:
        """Call Abaha; a 404 is success when `missing_ok` (deleting what is already gone)."""
        headers = {"Authorization": f"Bearer {self._token}", "Content-Type": "application/json"}
        response = send(self._session, PROVIDER, method, self._base + path, headers=headers, **kwargs)
        if response.status_code == 404 and missing_ok:
            return {}
        return _translate(method, path, response)

    def put_category(self, kv_id: int, body: dict[str, Any]) -> None:
        self.request("PUT", f"/categories/{kv_id}", json=body)

    def delete_category(self, kv_id: int) -> None:
        self.request("DELETE", f"/categories/{kv_id}", missing_ok=True)

    def put_product(self, kv_id: int, body: dict[str, Any]) -> None:
        self.request("PUT", f"/products/{kv_id}", json=body)

    def put_products_batch(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Upsert up to 100 products in one call; answer Abaha's result per item."""
        results: list[dict[str, Any]] = []
        for start in range(0, len(items), PRODUCTS_PER_BATCH):
            answer = self.request("PUT", "/products:batch", json={"items": items[start : start + PRODUCTS_PER_BATCH]})
            results += answer.get("results") or []
        return results

    def patch_product(self, kv_id: int, body: dict[str, Any]) -> None:
        self.request("PATCH", f"/products/{kv_id}", json=body)

    def put_price_list(self, kv_id: int, body: dict[str, Any]) -> None:
        self.request("PUT", f"/price-lists/{kv_id}", json=body)

    def delete_price_list(self, kv_id: int) -> None:
        self.request("DELETE", f"/price-lists/{kv_id}", missing_ok=True)

    def put_prices(self, kv_id: int, prices: list[dict[str, Any]]) -> None:
        for start in range(0, len(prices), PRICES_PER_CALL):
            chunk = prices[start : start + PRICES_PER_CALL]
            self.request("PUT", f"/price-lists/{kv_id}/prices", json={"prices": chunk})

    def delete_price(self, kv_id: int, product_kv_id: int) -> None:
        self.request("DELETE", f"/price-lists/{kv_id}/prices/{product_kv_id}", missing_ok=True)

    def link_order(self, abaha_order_id: int, kv_order_id: int, kv_order_code: str) -> None:
        body = {"kv_order_id": kv_order_id, "kv_order_code": kv_order_code}
        self.request("PUT", f"/orders/{abaha_order_id}/kiotviet", json=body)

    def set_order_status(self, abaha_order_id: int, body: dict[str, Any]) -> None:
        """Completed / Cancelled; a 409 `status_final` raises AbahaRejected with that code."""
        self.request("PUT", f"/orders/{abaha_order_id}/status", json=body)

    def changed_since(self, path: str, since: str, page: int = 1) -> Iterator[tuple[list[dict[str, Any]], int]]:
        """Pages of orders or customers changed since `since`, from page `page`, each with the
        number of the next page (0 after the last)."""
        number: int | None = page
        while number is not None:
            answer = self.request("GET", path, params={"updated_since": since, "page": number, "per_page": 100})
            number = answer.get("next_page")
            yield list(answer.get("data") or []), number or 0

    def put_customer_group(self, kv_id: int, body: dict[str, Any]) -> None:
        self.request("PUT", f"/customer-groups/{kv_id}", json=body)

    def put_customer(self, kv_id: int, body: dict[str, Any]) -> int:
        """Create or update the customer linked to KiotViet's `kv_id`; answer Abaha's id."""
        answer = self.request("PUT", f"/customers/by-kiotviet/{kv_id}", json=body)
        return int(answer["id"])


def _translate(method: str, path: str, response: requests.Response) -> Any:
    status = response.status_code
    if 200 <= status < 300:
        return response.json() if response.content.strip() else {}
    code, message = _error(response)
    if status in TRANSIENT_STATUSES:
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
