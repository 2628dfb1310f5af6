"""The admin API (SPEC §4.3): JSON in and out, behind ADMIN_TOKEN."""

from __future__ import annotations

from typing import Any

import structlog
from flask import Blueprint, Response, jsonify, request

from adapters.syncruns import SyncRuns
from admin import openapi
from admin.connections import ConnectionAdmin, ConnectionInvalid
from admin.failed import failed_changes, requeue_failed
from admin.quarantine import admit
from admin.sync import start_sync_run
from wiring import current_services

log = structlog.get_logger(__name__)
blueprint = Blueprint("admin", __name__, url_prefix="/admin")
REQUEUE_FIELDS = ("shop_id", "type", "job_id")


@blueprint.errorhandler(ConnectionInvalid)
def invalid(exc: ConnectionInvalid) -> tuple[Response, int]:
    return jsonify(errors=exc.errors), exc.status


@blueprint.put("/connections/<shop_id>")
def save_connection(shop_id: str) -> Response:
    body = request.get_json(silent=True)
    return jsonify(ConnectionAdmin(current_services()).save(shop_id, body))


@blueprint.get("/connections")
def list_connections() -> Response:
    return jsonify(connections=ConnectionAdmin(current_services()).list())


@blueprint.get("/connections/<shop_id>")
def show_connection(shop_id: str) -> Response | tuple[Response, int]:
    shown = ConnectionAdmin(current_services()).show(shop_id)
    return jsonify(shown) if shown else (jsonify(errors=[f"no connection for shop {shop_id}"]), 404)


@blueprint.delete("/connections/<shop_id>")
def delete_connection(shop_id: str) -> Response | tuple[Response, int]:
    deleted = ConnectionAdmin(current_services()).delete(shop_id)
    return jsonify(deleted) if deleted else (jsonify(errors=[f"no connection for shop {shop_id}"]), 404)


@blueprint.post("/connections/<shop_id>/sync")
def start_sync(shop_id: str) -> tuple[Response, int]:
    """Start a full sync of all entities, or of those named in `{"entities": [...]}`."""
    body = request.get_json(silent=True) if request.content_length else {}
    run_id = start_sync_run(current_services(), shop_id, body)
    return jsonify(id=run_id), 202


@blueprint.get("/connections/<shop_id>/sync")
def show_sync(shop_id: str) -> Response | tuple[Response, int]:
    described = SyncRuns(current_services().redis).describe(shop_id)
    return jsonify(described) if described else (jsonify(errors=[f"no full sync of shop {shop_id} yet"]), 404)


@blueprint.get("/quarantine")
def quarantine() -> Response | tuple[Response, int]:
    """Rejected KiotViet deliveries of a shop (or of every shop) with their reasons, newest
    first, and how many deliveries to unknown shop ids were counted (never stored)."""
    if refused := unknown_parameters("shop_id"):
        return refused
    services = current_services()
    wanted = request.args.get("shop_id")
    shops = [wanted] if wanted else [c.shop_id for c in services.connections.all()]
    found = [e for shop in shops for e in services.quarantine.entries(shop)]
    found.sort(key=lambda e: e.at, reverse=True)
    deliveries = [e.describe(services.quarantine.preview(e.shop_id, e)) for e in found[:200]]
    return jsonify(deliveries=deliveries, unknown_shop=services.quarantine.unknown_shop_counts())


@blueprint.post("/quarantine/<shop_id>/admit")
def admit_all(shop_id: str) -> Response | tuple[Response, int]:
    """Re-check every quarantined delivery of the shop; admit those that now pass."""
    if current_services().connections.get(shop_id) is None:
        return jsonify(errors=[f"no connection for shop {shop_id}"]), 404
    return jsonify(admit(current_services(), shop_id).to_json())


@blueprint.post("/quarantine/<shop_id>/<entry_id>/admit")
def admit_one(shop_id: str, entry_id: str) -> Response | tuple[Response, int]:
    """Re-check one quarantined delivery; admit it if it now passes."""
    if current_services().connections.get(shop_id) is None:
        return jsonify(errors=[f"no connection for shop {shop_id}"]), 404
    result = admit(current_services(), shop_id, entry_id)
    if not result.admitted and not result.still_rejected:
        return jsonify(errors=[f"no quarantined delivery {entry_id} for shop {shop_id}"]), 404
    return jsonify(result.to_json())


@blueprint.get("/failed")
def list_failed() -> Response | tuple[Response, int]:
    """Failed changes (of `?shop_id=`), newest first, each with its operator message (the trace
    stays in the dashboard)."""
    if refused := unknown_parameters("shop_id"):
        return refused
    found = failed_changes(current_services().redis, request.args.get("shop_id") or None)
    return jsonify(failed=[change.to_json() for change in found])


@blueprint.post("/failed/requeue")
def requeue() -> Response | tuple[Response, int]:
    """Replay failed changes: one (`job_id`), or those of a shop and type, or all of them."""
    body: Any = request.get_json(silent=True) if request.content_length else {}
    if not isinstance(body, dict) or any(not isinstance(body.get(k), (str, type(None))) for k in REQUEUE_FIELDS):
        return jsonify(errors=["body: must be a JSON object with optional text shop_id, type and job_id"]), 400
    requeued = requeue_failed(current_services().redis, body.get("shop_id"), body.get("type"), body.get("job_id"))
    log.info("failed.requeued", count=len(requeued), shop_id=body.get("shop_id"), type=body.get("type"),
             job_id=body.get("job_id"))  # fmt: skip
    return jsonify(requeued=len(requeued), job_ids=requeued)


def unknown_parameters(*known: str) -> tuple[Response, int] | None:
    """A 400 naming query parameters the route does not take: a mistyped filter (`?shopid=`)
    would otherwise list every shop's entries as if they were the one shop's."""
    unknown = sorted(set(request.args) - set(known))
    if not unknown:
        return None
    names = ", ".join(repr(name[:40]) for name in unknown[:5])
    return jsonify(errors=[f"unknown query parameter {names}; this route takes {', '.join(known)}"]), 400


@blueprint.get("/openapi.json")
def openapi_document() -> Response:
    """This API in OpenAPI 3.1 (admin/openapi.py)."""
    return jsonify(openapi.document())


dashboard_replays = Blueprint("dashboard_replays", __name__)


@dashboard_replays.post("/job/<job_id>/requeue")
def dashboard_requeue_one(job_id: str) -> Response:
    """The dashboard's Requeue of one job, with the whole retry schedule."""
    requeued = requeue_failed(current_services().redis, job_id=job_id)
    log.info("failed.requeued", count=len(requeued), job_id=job_id, via="dashboard")
    return jsonify(status="OK" if requeued else "ERROR")


@dashboard_replays.route("/requeue/<queue_name>", methods=["GET", "POST"])
def dashboard_requeue_all(queue_name: str) -> Response:
    """The dashboard's Requeue All of a queue, with the whole retry schedule."""
    requeued = requeue_failed(current_services().redis, queue=queue_name)
    log.info("failed.requeued", count=len(requeued), queue=queue_name, via="dashboard")
    return jsonify(status="OK", count=len(requeued))
