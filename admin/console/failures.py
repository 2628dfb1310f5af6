"""What failed: each failed change of a shop with the operator's sentence, and Retry."""

from __future__ import annotations

import structlog
from flask import flash, redirect, render_template, url_for
from flask_babel import ngettext
from werkzeug.wrappers import Response

from admin.console.blueprint import blueprint, connection_or_404
from admin.failed import failed_changes, requeue_failed
from wiring import current_services

log = structlog.get_logger(__name__)


@blueprint.get("/shops/<shop_id>/failed")
def failed(shop_id: str) -> str:
    """The shop's failed changes, newest first, the traceback one click away."""
    connection = connection_or_404(shop_id)
    changes = failed_changes(current_services().redis, shop_id)
    return render_template("console/failed.html", connection=connection, changes=changes)


@blueprint.post("/shops/<shop_id>/failed/<job_id>/retry")
def retry_one(shop_id: str, job_id: str) -> Response:
    """Replay one failed change with its whole retry schedule."""
    return _retry(shop_id, job_id)


@blueprint.post("/shops/<shop_id>/failed/retry")
def retry_all(shop_id: str) -> Response:
    """Replay every failed change of the shop."""
    return _retry(shop_id, None)


def _retry(shop_id: str, job_id: str | None) -> Response:
    connection_or_404(shop_id)
    requeued = requeue_failed(current_services().redis, shop_id, job_id=job_id)
    log.info("console.failed_requeued", shop_id=shop_id, count=len(requeued), job_id=job_id)
    flash(ngettext("%(num)d change queued again.", "%(num)d changes queued again.", len(requeued)),
          "ok" if requeued else "warn")  # fmt: skip
    return redirect(url_for(".failed", shop_id=shop_id))
