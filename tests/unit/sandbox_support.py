"""The simulated peers in-process (Flask's test client), and a receiver for their webhooks."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import responses
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from sandbox.abaha import AbahaSandbox, AbahaShop
from sandbox.kiotviet_data import KiotVietSandbox, Retailer, demo_retailer
from sandbox.server import create_sandbox_app

HOOK_URL = "http://receiver.test/webhooks/kiotviet/shop-1"
HOOK_SECRET = "c2VjcmV0LXNlY3JldA=="  # Base64 of "secret-secret", as the service makes them


@dataclass
class Received:
    """The webhooks the sandbox posted, as the receiver saw them."""

    bodies: list[bytes] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)

    def envelopes(self) -> list[dict[str, Any]]:
        return [json.loads(b) for b in self.bodies]


@dataclass
class Peers:
    kv: KiotVietSandbox
    ab: AbahaSandbox
    client: FlaskClient
    retailer: Retailer
    shop: AbahaShop
    token: str = ""

    @classmethod
    def start(cls, **demo: Any) -> Peers:
        kv, ab = KiotVietSandbox(), AbahaSandbox()
        retailer = kv.add_retailer(demo_retailer(**demo))
        shop = ab.add_shop("shop-1", "abaha-token")
        peers = cls(kv, ab, create_sandbox_app(kv, ab).test_client(), retailer, shop)
        peers.token = peers.new_token()
        return peers

    def new_token(self) -> str:
        answer = self.client.post("/kiotviet-id/connect/token", data={
            "client_id": self.retailer.client_id, "client_secret": self.retailer.client_secret,
            "grant_type": "client_credentials"})  # fmt: skip
        token: str = answer.get_json()["access_token"]
        return token

    @property
    def kv_headers(self) -> dict[str, str]:
        return {"Retailer": self.retailer.name, "Authorization": f"Bearer {self.token}"}

    def api(self, method: str, path: str, **kwargs: Any) -> TestResponse:
        """A call to the public API, as the service makes it."""
        return self.client.open(f"/kiotviet{path}", method=method, headers=self.kv_headers, **kwargs)

    def api_get(self, path: str, **params: Any) -> Any:
        answer = self.api("GET", path, query_string=params)
        assert answer.status_code == 200, answer.get_data(as_text=True)
        return answer.get_json()

    def control(self, verb: str, path: str, body: Any = None, **params: Any) -> TestResponse:
        """A control route of the simulated KiotViet, for this retailer."""
        return self.client.open(f"/_sandbox/kiotviet/{self.retailer.name}{path}", method=verb, json=body,
                                query_string=params)  # fmt: skip

    def abaha(self, verb: str, path: str, body: Any = None, **params: Any) -> TestResponse:
        """A call to the simulated Abaha's API, as the service makes it."""
        return self.client.open(f"/abaha/v1/shops/shop-1{path}", method=verb, json=body, query_string=params,
                                headers={"Authorization": "Bearer abaha-token"})  # fmt: skip

    def hook(self, kind: str, url: str = HOOK_URL, secret: str = HOOK_SECRET) -> int:
        """Register a webhook through the public API, as the service does."""
        answer = self.api("POST", "/webhooks", json={"Webhook": {"Type": kind, "Url": url, "IsActive": True,
                                                                "Secret": secret}})  # fmt: skip
        assert answer.status_code == 200, answer.get_data(as_text=True)
        hook_id: int = answer.get_json()["id"]
        return hook_id


def receiving(rsps: responses.RequestsMock, url: str = HOOK_URL, status: int = 200) -> Received:
    """Answer every POST to `url` with `status`, keeping what arrived."""
    received = Received()

    def take(request: Any) -> tuple[int, dict[str, str], str]:
        body = request.body if isinstance(request.body, bytes) else str(request.body).encode()
        received.bodies.append(body)
        received.headers.append(dict(request.headers))
        received.urls.append(request.url)
        return status, {}, "{}"

    rsps.add_callback(responses.POST, url, callback=take)
    return received
