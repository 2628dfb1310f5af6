"""Đồng bộ: start a full sync of a shop (all or chosen entities) and watch it, entity by entity."""

from __future__ import annotations

from typing import Any

from flask import flash, jsonify, redirect, render_template, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from adapters.syncruns import SyncRuns
from admin.connections import ConnectionInvalid
from admin.console.blueprint import blueprint, connection_or_404
from admin.console.forms import ENTITY_LABELS, SyncForm, add_error
from admin.sync import start_sync_run
from wiring import current_services

FINISHED = ("done", "failed")


@blueprint.route("/shops/<shop_id>/sync", methods=["GET", "POST"])
def sync(shop_id: str) -> Response | str | tuple[str, int]:
    """The sync form, and the latest run's progress (the page's script keeps it live)."""
    connection = connection_or_404(shop_id)
    form = SyncForm()
    if form.validate_on_submit():
        try:
            start_sync_run(current_services(), shop_id, {"entities": form.entities.data})
        except ConnectionInvalid as exc:
            for message in exc.errors:
                add_error(form.entities, message)
        else:
            flash(_("Full sync started."), "ok")
            return redirect(url_for(".sync", shop_id=shop_id))
    run = progress(SyncRuns(current_services().redis).describe(shop_id))
    page = render_template("console/sync.html", connection=connection, form=form, run=run)
    return (page, 422) if form.errors else page


@blueprint.get("/shops/<shop_id>/sync/progress")
def sync_progress(shop_id: str) -> Response | tuple[Response, int]:
    """The latest run as the admin API describes it, each entity with its percentage."""
    connection_or_404(shop_id)
    run = progress(SyncRuns(current_services().redis).describe(shop_id))
    return jsonify(run) if run else (jsonify(errors=[_("No full sync yet.")]), 404)


def progress(described: dict[str, Any] | None) -> dict[str, Any] | None:
    """The run with, per entity, its label and how far it got in percent (None: not known yet)."""
    if described is None:
        return None
    state = described["state"]
    entities = {name: {**counts, "label": str(ENTITY_LABELS.get(name, name)), "percent": percent(counts, state)}
                for name, counts in described["entities"].items()}  # fmt: skip
    return {**described, "entities": entities, "finished": state in FINISHED}


def percent(counts: dict[str, Any], state: str) -> int | None:
    """done / total as a whole percentage; a finished run with nothing to do counts as 100."""
    done, total = int(counts.get("done") or 0), counts.get("total")
    if total:
        return min(100, done * 100 // int(total))
    if total == 0 or state == "done":
        return 100
    return None
