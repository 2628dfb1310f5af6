"""The admin API described in OpenAPI 3.1, served at `/admin/openapi.json` behind the admin token
like the rest of /admin. Field lists come from the code that fills them (outcomes, entities,
webhook types), so the document and the answers move together; a test holds every route of the
`admin` blueprint to it and the other way round."""

from __future__ import annotations

from typing import Any

from adapters.syncruns import ENTITIES
from schemas.events import Outcome
from schemas.kiotviet_webhook import WEBHOOK_TYPES

JSON = "application/json"
Schema = dict[str, Any]


def text(nullable: bool = False, **extra: Any) -> Schema:
    return {"type": ["string", "null"] if nullable else "string", **extra}


def integer(nullable: bool = False, **extra: Any) -> Schema:
    return {"type": ["integer", "null"] if nullable else "integer", **extra}


def number(nullable: bool = False) -> Schema:
    return {"type": ["number", "null"] if nullable else "number"}


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def obj(
    properties: dict[str, Schema], required: list[str] | None = None, nullable: bool = False, **extra: Any
) -> Schema:
    """An object that has every listed property (unless `required` says which) and may carry more."""
    return {
        "type": ["object", "null"] if nullable else "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        **extra,
    }


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


TEXTS = array(text())
SHOP_ID = {"name": "shop_id", "in": "path", "required": True, "schema": text(), "description": "the shop's id"}
NEW_SHOP_ID = {**SHOP_ID, "schema": text(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")}
SHOP_FILTER = {"name": "shop_id", "in": "query", "required": False, "schema": text(), "description": "one shop only"}
LAST_SYNC = obj(
    {
        "id": text(),
        "state": text(),
        "queued_at": text(nullable=True),
        "done_at": text(nullable=True),
        "failed_at": text(nullable=True),
    },
    required=["id", "state"],
    nullable=True,
)

SCHEMAS: dict[str, Schema] = {
    "Errors": obj(
        {"errors": array(text(minLength=1))}, description="why the request was refused: one clear message per problem"
    ),
    "ConnectionRequest": obj(
        {
            "retailer": text(description="the shop name of <retailer>.kiotviet.vn"),
            "client_id": text(),
            "client_secret": text(),
            "branch_id": integer(),
            "surcharge_code": text(nullable=True),
            "abaha_api_token": text(),
            "register_webhooks": {"type": "boolean", "default": True},
            "rotate_abaha_token": {"type": "boolean", "default": False},
            "take_over_webhooks": {"type": "boolean", "default": False},
        },
        required=["retailer", "client_id", "client_secret", "branch_id", "abaha_api_token"],
    ),
    "Connection": obj(
        {
            "shop_id": text(),
            "retailer": text(),
            "branch_id": integer(),
            "surcharge_code": text(nullable=True),
            "kiotviet_webhook_url": text(nullable=True),
            "webhooks": array(obj({"type": text(enum=list(WEBHOOK_TYPES)), "id": {"type": ["integer", "string"]}})),
            "abaha_webhook": obj({"url": text(nullable=True), "header": text()}),
            "warnings": TEXTS,
        }
    ),
    "SavedConnection": {
        "allOf": [
            ref("Connection"),
            obj(
                {
                    "abaha_webhook": obj(
                        {
                            "url": text(nullable=True),
                            "header": text(),
                            "token": text(description="shown on a save only"),
                        }
                    )
                }
            ),
        ]
    },
    "ConnectionWithState": {
        "allOf": [
            ref("Connection"),
            obj(
                {
                    "state": obj(
                        {
                            "saved_at": text(nullable=True),
                            "last_sync": LAST_SYNC,
                            "counts": obj({str(outcome): integer(minimum=0) for outcome in Outcome}),
                            "quarantined": integer(minimum=0),
                            "pending": integer(minimum=0),
                            "unresolved_orders": array(obj({"abaha_order_id": integer()}, additionalProperties=True)),
                            "problems": array(obj({"at": text(), "message": text()})),
                            "health": {"oneOf": [ref("Health"), {"type": "null"}]},
                        }
                    )
                }
            ),
        ]
    },
    "Health": obj(
        {
            "shop_id": text(),
            "retailer": text(),
            "last_write_at_ms": integer(nullable=True),
            "seconds_since_last_write": number(nullable=True),
            "pending": integer(minimum=0),
            "oldest_pending_seconds": number(nullable=True),
            "average_lag_seconds": number(nullable=True),
            "failures_last_hour": integer(minimum=0),
            "failed_total": integer(minimum=0),
            "quarantined": integer(minimum=0),
            "budget_used_last_hour": integer(minimum=0),
            "budget_hourly": integer(minimum=0),
            "warnings": TEXTS,
            "last_sync": LAST_SYNC,
            "unresolved_orders": integer(minimum=0),
        }
    ),
    "SyncRun": obj(
        {
            "id": text(),
            "state": text(enum=["queued", "running", "done", "failed"]),
            "entities": {
                "type": "object",
                "additionalProperties": obj({"done": integer(minimum=0), "total": integer(nullable=True)}),
            },
            "errors": TEXTS,
        }
    ),
    "QuarantinedDelivery": obj(
        {
            "id": text(),
            "at": text(),
            "shop_id": text(),
            "reason": text(),
            "size": integer(minimum=0),
            "signed": {"type": "boolean"},
            "body_preview": text(),
        }
    ),
    "Admitted": obj({"admitted": TEXTS, "still_rejected": array(obj({"id": text(), "reason": text()}))}),
    "FailedChange": obj(
        {
            "job_id": text(),
            "queue": text(),
            "shop_id": text(nullable=True),
            "type": text(nullable=True),
            "entity_id": text(nullable=True),
            "message": text(),
            "failed_at": text(nullable=True),
            "attempts": integer(minimum=1),
        }
    ),
    "RequeueRequest": obj(
        {"shop_id": text(nullable=True), "type": text(nullable=True), "job_id": text(nullable=True)}, required=[]
    ),
    "SyncRequest": obj({"entities": array(text(enum=list(ENTITIES)))}, required=[]),
}


def answer(description: str, schema: Schema | None = None) -> Schema:
    return {"description": description, "content": {JSON: {"schema": schema or ref("Errors")}}}


def body(schema: Schema, required: bool = True) -> Schema:
    return {"required": required, "content": {JSON: {"schema": schema}}}


REFUSED = {"401": answer("missing or wrong admin token")}
UNKNOWN_PARAMETER = {"400": answer("a query parameter the route does not take")}
NO_SHOP = {"404": answer("no connection for this shop")}
BAD_BODY = {"422": answer("the body or a value is refused; one message per problem")}


def operation(
    summary: str, answers: dict[str, Schema], parameters: list[Schema] | None = None, request: Schema | None = None
) -> Schema:
    found: Schema = {"summary": summary, "parameters": parameters or [], "responses": {**answers, **REFUSED}}
    if request is not None:
        found["requestBody"] = request
    return found


PATHS: dict[str, dict[str, Schema]] = {
    "/admin/connections": {
        "get": operation(
            "Every connection with its state",
            {"200": answer("the connections", obj({"connections": array(ref("ConnectionWithState"))}))},
        )
    },
    "/admin/connections/{shop_id}": {
        "put": operation(
            "Save a shop's connection: checked against KiotViet, webhooks registered",
            {
                "200": answer("saved; the Abaha webhook token is shown this once", ref("SavedConnection")),
                "502": answer("KiotViet did not answer; nothing was saved"),
                "422": {
                    **answer(
                        "refused; nothing was saved",
                        obj(
                            {"errors": array(text(minLength=1)), "taken": array(obj({"type": text(), "host": text()}))},
                            required=["errors"],
                        ),
                    )
                },
            },
            [SHOP_ID],
            body(ref("ConnectionRequest")),
        ),
        "get": operation(
            "One connection with its state",
            {"200": answer("the connection", ref("ConnectionWithState")), **NO_SHOP},
            [SHOP_ID],
        ),
        "delete": operation(
            "Unregister the shop's webhooks and forget its secrets",
            {
                "200": answer("deleted", obj({"shop_id": text(), "deleted": {"const": True}, "warnings": TEXTS})),
                **NO_SHOP,
            },
            [SHOP_ID],
        ),
    },
    "/admin/connections/{shop_id}/sync": {
        "post": operation(
            "Start a full sync of all entities or of those named",
            {
                "202": answer("started", obj({"id": text()})),
                **NO_SHOP,
                **BAD_BODY,
            },
            [SHOP_ID],
            body(ref("SyncRequest"), required=False),
        ),
        "get": operation(
            "The shop's latest full sync",
            {"200": answer("the run", ref("SyncRun")), "404": answer("no full sync of this shop yet")},
            [SHOP_ID],
        ),
    },
    "/admin/quarantine": {
        "get": operation(
            "Rejected KiotViet deliveries, newest first",
            {
                "200": answer(
                    "the deliveries, and deliveries to unknown shops counted by reason",
                    obj(
                        {
                            "deliveries": array(ref("QuarantinedDelivery")),
                            "unknown_shop": {"type": "object", "additionalProperties": integer(minimum=0)},
                        }
                    ),
                ),
                **UNKNOWN_PARAMETER,
            },
            [SHOP_FILTER],
        )
    },
    "/admin/quarantine/{shop_id}/admit": {
        "post": operation(
            "Re-check every quarantined delivery of the shop; admit those that pass",
            {"200": answer("what was admitted and what is still rejected", ref("Admitted")), **NO_SHOP},
            [SHOP_ID],
        )
    },
    "/admin/quarantine/{shop_id}/{entry_id}/admit": {
        "post": operation(
            "Re-check one quarantined delivery; admit it if it passes",
            {"200": answer("the outcome", ref("Admitted")), "404": answer("no such shop or delivery")},
            [SHOP_ID, {"name": "entry_id", "in": "path", "required": True, "schema": text()}],
        )
    },
    "/admin/failed": {
        "get": operation(
            "Changes that failed for good, newest first",
            {"200": answer("the failed changes", obj({"failed": array(ref("FailedChange"))})), **UNKNOWN_PARAMETER},
            [SHOP_FILTER],
        )
    },
    "/admin/failed/requeue": {
        "post": operation(
            "Replay failed changes: one, those of a shop and type, or all",
            {
                "200": answer(
                    "what was put back on its queue", obj({"requeued": integer(minimum=0), "job_ids": TEXTS})
                ),
                "400": answer("the body is not such an object"),
            },
            request=body(ref("RequeueRequest"), required=False),
        )
    },
    "/admin/openapi.json": {"get": operation("This document", {"200": answer("OpenAPI 3.1", {"type": "object"})})},
}


def document() -> dict[str, Any]:
    """The OpenAPI document of the admin API."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Abaha ⇄ KiotViet sync: admin API",
            "version": "1",
            "description": "Connections, full syncs, quarantined deliveries and failed changes (SPEC §4.3).",
        },
        "servers": [{"url": "/"}],
        "security": [{"adminToken": []}],
        "paths": PATHS,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"adminToken": {"type": "http", "scheme": "bearer", "description": "ADMIN_TOKEN"}},
        },
    }
