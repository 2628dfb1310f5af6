"""Saving, showing and deleting a shop's connection: the logic shared by the API and the CLI."""

from __future__ import annotations

import base64
import re
import secrets
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import structlog
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from adapters.connections import Connection, ConnectionSecrets, WebhookRegistration
from adapters.errors import KiotVietRejected, PermanentError, TransientError
from adapters.kiotviet import KiotVietAuth, KiotVietClient
from adapters.syncruns import SyncRuns
from schemas.kiotviet import lower_keys
from schemas.kiotviet_webhook import WEBHOOK_TYPES
from wiring import Services

log = structlog.get_logger(__name__)
SHOP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
ABAHA_TOKEN_HEADER = "X-Abaha-Token"
OUT_OF_STOCK_WARNING = (
    "KiotViet's setting 'Cho phép đặt hàng khi hết tồn kho' (AllowOrderWhenOutStock) is off: "
    "orders for products out of stock at the branch will be refused by KiotViet"
)


class ConnectionInvalid(Exception):
    """The connection cannot be saved; one clear message per problem."""

    def __init__(self, errors: list[str], status: int = 422) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors
        self.status = status


class ConnectionRequestSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    retailer = fields.Str(required=True, validate=validate.Regexp(r"^[a-z0-9][a-z0-9-]{0,62}$",
                          error="must be the shop name of <retailer>.kiotviet.vn, e.g. thoitrangmogi"))  # fmt: skip
    client_id = fields.Str(required=True, validate=validate.Length(min=1, max=200))
    client_secret = fields.Str(required=True, validate=validate.Length(min=1, max=500))
    branch_id = fields.Int(required=True, strict=False)
    surcharge_code = fields.Str(load_default=None, allow_none=True, validate=validate.Length(max=100))
    abaha_api_token = fields.Str(required=True, validate=validate.Length(min=1, max=500))
    register_webhooks = fields.Bool(load_default=True)
    rotate_abaha_token = fields.Bool(load_default=False)


@dataclass
class KiotVietCheck:
    """What validating the credentials against KiotViet found."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    surcharge_id: int | None = None


class ConnectionAdmin:
    """Operations on connections, given the process's services."""

    def __init__(self, services: Services) -> None:
        self._services = services

    def save(self, shop_id: str, body: Any) -> dict[str, Any]:
        """Validate against KiotViet, store, register webhooks; answer without secrets but the
        Abaha webhook token (shown here and on no later GET)."""
        request = load_request(shop_id, body)
        if request["register_webhooks"] and not self._services.settings.public_base_url:
            raise ConnectionInvalid(["PUBLIC_BASE_URL is not set, so KiotViet cannot be told where to send "
                                     "webhooks; set it, or save with register_webhooks false"])  # fmt: skip
        client = self._client(request["retailer"], request["client_id"], request["client_secret"])
        check = check_kiotviet(client, request["branch_id"], request["surcharge_code"])
        if check.errors:
            raise ConnectionInvalid(check.errors)
        previous = self._services.connections.get(shop_id)
        old_secrets = self._services.connections.readable_secrets(shop_id) if previous else None
        keep_token = old_secrets is not None and not request["rotate_abaha_token"]
        abaha_token = old_secrets.abaha_webhook_token if keep_token and old_secrets else secrets.token_urlsafe(32)
        connection = Connection(
            shop_id=shop_id, retailer=request["retailer"], client_id=request["client_id"],
            branch_id=request["branch_id"], surcharge_code=request["surcharge_code"],
            surcharge_id=check.surcharge_id, webhooks=previous.webhooks if previous else (),
            warnings=tuple(check.warnings), saved_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )  # fmt: skip
        fresh = {kind: _webhook_secret() for kind in WEBHOOK_TYPES} if request["register_webhooks"] else {}
        kept = old_secrets.webhook_secrets[: len(WEBHOOK_TYPES)] if old_secrets else ()
        stored = ConnectionSecrets(
            client_secret=request["client_secret"], abaha_api_token=request["abaha_api_token"],
            abaha_webhook_token=abaha_token, webhook_secrets=tuple(fresh.values()) + tuple(kept),
        )  # fmt: skip
        # secrets first: KiotViet may deliver as soon as a webhook is registered
        self._services.connections.save(connection, stored)
        if fresh:
            connection = replace(connection, webhooks=self._register(client, connection, fresh))
            self._services.connections.save(connection, stored)
        log.info("connection.saved", shop_id=shop_id, retailer=connection.retailer, webhooks=len(connection.webhooks))
        return {**self.describe(connection), "abaha_webhook": {**self._abaha_webhook(shop_id), "token": abaha_token}}

    def describe(self, connection: Connection) -> dict[str, Any]:
        """The connection as the admin API shows it (never a secret)."""
        return {
            "shop_id": connection.shop_id,
            "retailer": connection.retailer,
            "branch_id": connection.branch_id,
            "surcharge_code": connection.surcharge_code,
            "kiotviet_webhook_url": self._kiotviet_url(connection.shop_id),
            "webhooks": [{"type": w.type, "id": w.id} for w in connection.webhooks],
            "abaha_webhook": self._abaha_webhook(connection.shop_id),
            "warnings": list(connection.warnings),
        }

    def show(self, shop_id: str) -> dict[str, Any] | None:
        """The connection with its state: counts, quarantined deliveries, last sync."""
        connection = self._services.connections.get(shop_id)
        if connection is None:
            return None
        counts = self._services.state.counts(shop_id)
        run = SyncRuns(self._services.redis).describe(shop_id)
        last_sync = {k: run.get(k) for k in ("id", "state", "queued_at", "done_at", "failed_at")} if run else None
        state = {"saved_at": connection.saved_at, "last_sync": last_sync, "counts": counts,
                 "quarantined": counts.get("quarantined", 0),
                 "problems": self._services.state.problems(shop_id)}  # fmt: skip
        return {**self.describe(connection), "state": state}

    def list(self) -> list[dict[str, Any]]:
        return [self.show(c.shop_id) or {} for c in self._services.connections.all()]

    def delete(self, shop_id: str) -> dict[str, Any] | None:
        """Unregister the shop's KiotViet webhooks and forget its secrets and state."""
        connection = self._services.connections.get(shop_id)
        if connection is None:
            return None
        stored = self._services.connections.readable_secrets(shop_id)
        warnings: list[str] = []
        try:
            if stored is None:
                raise PermanentError("the stored client secret cannot be read (SECRET_KEY changed)")
            client = self._client(connection.retailer, connection.client_id, stored.client_secret)
            for webhook in connection.webhooks:
                client.delete_webhook(webhook.id)
        except (PermanentError, TransientError) as exc:
            warnings.append(f"KiotViet webhooks could not all be removed ({exc}); remove them in KiotViet")
        self._services.connections.delete(shop_id)
        self._services.state.forget_shop(shop_id)
        log.info("connection.deleted", shop_id=shop_id)
        return {"shop_id": shop_id, "deleted": True, "warnings": warnings}

    def _register(
        self, client: KiotVietClient, connection: Connection, fresh: dict[str, str]
    ) -> tuple[WebhookRegistration, ...]:
        url = self._kiotviet_url(connection.shop_id)
        assert url is not None, "checked in save()"
        try:
            self._remove_ours(client, connection, url)
            return tuple(WebhookRegistration(kind, client.register_webhook(kind, url, secret))
                         for kind, secret in fresh.items())  # fmt: skip
        except KiotVietRejected as exc:
            raise ConnectionInvalid(
                [f"KiotViet refused to register the webhooks: {exc.kiotviet_message or exc}"]
            ) from exc
        except TransientError as exc:
            raise ConnectionInvalid([f"KiotViet did not answer while registering webhooks: {exc}"], 502) from exc

    def _remove_ours(self, client: KiotVietClient, connection: Connection, url: str) -> None:
        """Drop webhooks we registered before, also ones a crashed save left behind."""
        known = {str(w.id) for w in connection.webhooks}
        listed = client.request("GET", "/webhooks")
        for item in lower_keys(listed).get("data") or []:
            if str(item.get("id")) in known or item.get("url") == url:
                known.add(str(item.get("id")))
        for webhook_id in known:
            client.delete_webhook(webhook_id)

    def _client(self, retailer: str, client_id: str, client_secret: str) -> KiotVietClient:
        settings = self._services.settings
        auth = KiotVietAuth(self._services.redis, self._services.vault, settings.kiotviet_token_url)
        return KiotVietClient(base_url=settings.kiotviet_api_url, retailer=retailer, client_id=client_id,
                              client_secret=client_secret, auth=auth)  # fmt: skip

    def _kiotviet_url(self, shop_id: str) -> str | None:
        base = self._services.settings.public_base_url
        return f"{base}/webhooks/kiotviet/{shop_id}" if base else None

    def _abaha_webhook(self, shop_id: str) -> dict[str, Any]:
        base = self._services.settings.public_base_url
        return {"url": f"{base}/webhooks/abaha/{shop_id}" if base else None, "header": ABAHA_TOKEN_HEADER}


def load_request(shop_id: str, body: Any) -> dict[str, Any]:
    """The validated request, or ConnectionInvalid with one message per problem."""
    errors = [] if SHOP_ID.match(shop_id) else ["shop_id: use 1-64 letters, digits, '.', '_' or '-'"]
    if not isinstance(body, dict):
        raise ConnectionInvalid([*errors, "body: must be a JSON object"])
    try:
        request: dict[str, Any] = ConnectionRequestSchema().load(body)
    except ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {"body": exc.messages}
        errors += [f"{key}: {' '.join(map(str, value))}" for key, value in sorted(messages.items())]
        raise ConnectionInvalid(errors) from exc
    if errors:
        raise ConnectionInvalid(errors)
    return request


def check_kiotviet(client: KiotVietClient, branch_id: int, surcharge_code: str | None) -> KiotVietCheck:
    """Credentials, branch, surcharge code and the out-of-stock ordering setting."""
    check = KiotVietCheck()
    try:
        branches = client.branches()
    except KiotVietRejected as exc:
        check.errors.append(str(exc))
        return check
    except TransientError as exc:
        raise ConnectionInvalid([f"KiotViet did not answer, try again: {exc}"], 502) from exc
    names = {int(b["id"]): b.get("branchName") for b in branches if "id" in b}
    if branch_id not in names:
        known = ", ".join(f"{i} ({n})" for i, n in sorted(names.items())) or "none"
        check.errors.append(f"branch_id: branch {branch_id} does not exist in KiotViet; the shop's branches: {known}")
    try:
        if surcharge_code:
            check.surcharge_id = _surcharge_id(client, surcharge_code, check.errors)
        settings = client.settings()
    except TransientError as exc:
        raise ConnectionInvalid([f"KiotViet did not answer, try again: {exc}"], 502) from exc
    except KiotVietRejected as exc:
        check.errors.append(f"KiotViet refused to show the shop's settings: {exc.kiotviet_message or exc}")
        return check
    if _setting_off(settings.get("alloworderwhenoutstock")):
        check.warnings.append(OUT_OF_STOCK_WARNING)
    return check


def _surcharge_id(client: KiotVietClient, code: str, errors: list[str]) -> int | None:
    try:
        surcharges = client.surcharges()
    except KiotVietRejected as exc:
        errors.append("surcharge_code: KiotViet cannot list other fees (Thu khác): "
                      f"{exc.kiotviet_message or exc}; enable them in KiotViet's store settings")  # fmt: skip
        return None
    for item in surcharges:
        if str(item.get("surchargeCode") or item.get("code") or "").lower() == code.lower():
            return int(item["id"])
    errors.append(f"surcharge_code: '{code}' is not a surcharge code in KiotViet (Quản lý thu khác); "
                  "create it there or leave surcharge_code out")  # fmt: skip
    return None


def _setting_off(value: Any) -> bool:
    return value is False or str(value).strip().lower() in ("false", "0")


def _webhook_secret() -> str:
    # KiotViet wants a random, Base64-encoded secret of 8+ characters
    return base64.b64encode(secrets.token_bytes(24)).decode("ascii")
