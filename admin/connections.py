"""Saving, showing and deleting a shop's connection: the logic shared by the API, the CLI and the
console."""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import structlog
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from adapters.connections import Connection, ConnectionSecrets
from adapters.errors import KiotVietRejected, PermanentError, TransientError
from adapters.kiotviet import KiotVietClient
from adapters.kiotviet_auth import KiotVietAuth
from adapters.syncruns import SyncRuns
from admin.health import shop_health
from admin.kiotviet_check import ConnectionInvalid, KiotVietCheck, check_kiotviet
from schemas.kiotviet_webhook import WEBHOOK_TYPES
from wiring import Services
from workers import hooks

log = structlog.get_logger(__name__)
# \Z, not $: "$" also matches before a final newline, and "shop-7\n" is no shop id nor retailer
SHOP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
RETAILER = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}\Z")
ABAHA_TOKEN_HEADER = "X-Abaha-Token"
__all__ = ["ConnectionAdmin", "ConnectionInvalid", "load_request"]


class ConnectionRequestSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    retailer = fields.Str(required=True, validate=validate.Regexp(RETAILER,
                          error="must be the shop name of <retailer>.kiotviet.vn, e.g. thoitrangmogi"))  # fmt: skip
    client_id = fields.Str(required=True, validate=validate.Length(min=1, max=200))
    client_secret = fields.Str(required=True, validate=validate.Length(min=1, max=500))
    branch_id = fields.Int(required=True, strict=False)
    surcharge_code = fields.Str(load_default=None, allow_none=True, validate=validate.Length(max=100))
    abaha_api_token = fields.Str(required=True, validate=validate.Length(min=1, max=500))
    register_webhooks = fields.Bool(load_default=True)
    rotate_abaha_token = fields.Bool(load_default=False)
    take_over_webhooks = fields.Bool(load_default=False)


class ConnectionAdmin:
    """Operations on connections, given the process's services."""

    def __init__(self, services: Services) -> None:
        self._services = services

    def save(self, shop_id: str, body: Any) -> dict[str, Any]:
        """Validate against KiotViet, store, register webhooks; answer without secrets but the
        Abaha webhook token (shown here and on no later GET). Nothing changes on a refusal."""
        request = load_request(shop_id, body)
        url = self._kiotviet_url(shop_id)
        if request["register_webhooks"] and url is None:
            raise ConnectionInvalid(["PUBLIC_BASE_URL is not set, so KiotViet cannot be told where to send "
                                     "webhooks; set it, or save with register_webhooks false"])  # fmt: skip
        client = self.client(request["retailer"], request["client_id"], request["client_secret"])
        check = check_kiotviet(client, request["branch_id"], request["surcharge_code"])
        if check.errors:
            raise ConnectionInvalid(check.errors)
        found = self._survey(client, url) if request["register_webhooks"] and url else None
        if found is not None and found.taken and not request["take_over_webhooks"]:
            raise ConnectionInvalid(
                [hooks.taken_message(k, h) for k, h in sorted(found.taken.items())]
                + ['to take them over, save again with "take_over_webhooks": true'],
                taken=[{"type": k, "host": hooks.host_of(h)} for k, h in sorted(found.taken.items())])  # fmt: skip
        connection, stored, abaha_token = self._stored(shop_id, request, check)
        # secrets first: KiotViet may deliver as soon as a webhook is registered
        self._services.connections.save(connection, stored)
        warnings = list(check.warnings)
        if found is not None and url is not None:
            connection, taken_over = self._register(client, connection, stored, found, url)
            warnings = [*taken_over, *warnings]
        self._services.connections.save_warnings(shop_id, warnings)
        log.info("connection.saved", shop_id=shop_id, retailer=connection.retailer, webhooks=len(connection.webhooks))
        return {**self.describe(connection), "abaha_webhook": {**self._abaha_webhook(shop_id), "token": abaha_token}}

    def _stored(self, shop_id: str, request: dict[str, Any],
                check: KiotVietCheck) -> tuple[Connection, ConnectionSecrets, str]:  # fmt: skip
        """The connection and its secrets as they will be stored; the Abaha webhook token kept
        unless asked to rotate it, the webhook secrets kept for their grace."""
        previous = self._services.connections.get(shop_id)
        old = self._services.connections.readable_secrets(shop_id) if previous else None
        keep_token = old is not None and not request["rotate_abaha_token"]
        abaha_token = old.abaha_webhook_token if keep_token and old else secrets.token_urlsafe(32)
        connection = Connection(
            shop_id=shop_id, retailer=request["retailer"], client_id=request["client_id"],
            branch_id=request["branch_id"], surcharge_code=request["surcharge_code"],
            surcharge_id=check.surcharge_id, webhooks=previous.webhooks if previous else (),
            warnings=tuple(check.warnings), saved_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )  # fmt: skip
        stored = ConnectionSecrets(
            client_secret=request["client_secret"], abaha_api_token=request["abaha_api_token"],
            abaha_webhook_token=abaha_token, webhook_secrets=old.with_new_secrets({}, time.time()) if old else {},
        )  # fmt: skip
        return connection, stored, abaha_token

    def _register(self, client: KiotVietClient, connection: Connection, stored: ConnectionSecrets,
                  found: hooks.Survey, url: str) -> tuple[Connection, list[str]]:  # fmt: skip
        """Replace ours, take over what another integration holds (asked for), register all."""
        try:
            known = {str(w.id) for w in connection.webhooks}
            for hook in [h for listed in found.ours.values() for h in listed] + list(found.taken.values()):
                known.add(str(hook.id))
            for webhook_id in known:
                client.delete_webhook(webhook_id)
            registered, _ = hooks.register(client, self._services.connections, replace(connection, webhooks=()),
                                           stored, list(WEBHOOK_TYPES), url)  # fmt: skip
        except KiotVietRejected as exc:
            raise ConnectionInvalid(
                [f"KiotViet refused to register the webhooks: {exc.kiotviet_message or exc}"]
            ) from exc
        except TransientError as exc:
            raise ConnectionInvalid([f"KiotViet did not answer while registering webhooks: {exc}"], 502) from exc
        taken_over = [hooks.taken_over_warning(k, hooks.host_of(h)) for k, h in sorted(found.taken.items())]
        return registered, taken_over

    def _survey(self, client: KiotVietClient, url: str) -> hooks.Survey:
        try:
            return hooks.survey(client, url)
        except KiotVietRejected as exc:
            raise ConnectionInvalid([f"KiotViet refused to list its webhooks: {exc.kiotviet_message or exc}"]) from exc
        except TransientError as exc:
            raise ConnectionInvalid([f"KiotViet did not answer, try again: {exc}"], 502) from exc

    def describe(self, connection: Connection) -> dict[str, Any]:
        """The connection as the admin API shows it (never a secret), with current warnings."""
        current = self._services.connections.warnings(connection.shop_id)
        return {
            "shop_id": connection.shop_id,
            "retailer": connection.retailer,
            "branch_id": connection.branch_id,
            "surcharge_code": connection.surcharge_code,
            "kiotviet_webhook_url": self._kiotviet_url(connection.shop_id),
            "webhooks": [{"type": w.type, "id": w.id} for w in connection.webhooks],
            "abaha_webhook": self._abaha_webhook(connection.shop_id),
            "warnings": list(connection.warnings) if current is None else current,
        }

    def show(self, shop_id: str) -> dict[str, Any] | None:
        """The connection with its state: counts, quarantined deliveries, last sync, what waits."""
        services = self._services
        connection = services.connections.get(shop_id)
        if connection is None:
            return None
        counts = services.state.counts(shop_id)
        run = SyncRuns(services.redis).describe(shop_id)
        last_sync = {k: run.get(k) for k in ("id", "state", "queued_at", "done_at", "failed_at")} if run else None
        state = {"saved_at": connection.saved_at, "last_sync": last_sync, "counts": counts,
                 "quarantined": services.quarantine.count(shop_id), "pending": services.pending.pending_count(shop_id),
                 "unresolved_orders": services.links.unresolved_orders(shop_id),
                 "problems": services.state.problems(shop_id)}  # fmt: skip
        health = shop_health(services, shop_id)
        return {**self.describe(connection), "state": {**state, "health": health.to_json() if health else None}}

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
            client = self.client(connection.retailer, connection.client_id, stored.client_secret)
            for webhook in connection.webhooks:
                client.delete_webhook(webhook.id)
        except (PermanentError, TransientError) as exc:
            warnings.append(f"KiotViet webhooks could not all be removed ({exc}); remove them in KiotViet")
        self._services.connections.delete(shop_id)
        self._services.state.forget_shop(shop_id)
        log.info("connection.deleted", shop_id=shop_id)
        return {"shop_id": shop_id, "deleted": True, "warnings": warnings}

    def client(self, retailer: str, client_id: str, client_secret: str) -> KiotVietClient:
        settings = self._services.settings
        auth = KiotVietAuth(self._services.redis, self._services.vault, settings.kiotviet_token_url,
                            read_timeout=settings.peer_read_timeout)  # fmt: skip
        return KiotVietClient(base_url=settings.kiotviet_api_url, retailer=retailer, client_id=client_id,
                              client_secret=client_secret, auth=auth,
                              read_timeout=settings.peer_read_timeout)  # fmt: skip

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
