"""Quarantine: a shop's rejected KiotViet deliveries with their reasons; re-check and admit."""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from werkzeug.wrappers import Response

from admin.console.blueprint import blueprint, connection_or_404
from admin.quarantine import admit
from wiring import current_services


@blueprint.get("/shops/<shop_id>/quarantine")
def quarantined(shop_id: str) -> str:
    """The shop's rejected deliveries, newest first, each with a preview of its body."""
    connection = connection_or_404(shop_id)
    store = current_services().quarantine
    entries = [(entry, store.preview(shop_id, entry)) for entry in store.entries(shop_id)]
    return render_template("console/quarantine.html", connection=connection, entries=entries)


@blueprint.post("/shops/<shop_id>/quarantine/admit")
def admit_all(shop_id: str) -> Response:
    """Re-check every quarantined delivery of the shop; admit those that now pass."""
    return _admit(shop_id, None)


@blueprint.post("/shops/<shop_id>/quarantine/<entry_id>/admit")
def admit_one(shop_id: str, entry_id: str) -> Response:
    """Re-check one quarantined delivery; admit it if it now passes."""
    return _admit(shop_id, entry_id)


def _admit(shop_id: str, entry_id: str | None) -> Response:
    connection_or_404(shop_id)
    result = admit(current_services(), shop_id, entry_id)
    if result.admitted:
        flash(ngettext("%(num)d delivery admitted.", "%(num)d deliveries admitted.", len(result.admitted)), "ok")
    for still in result.still_rejected:
        flash(_("Still rejected: %(reason)s", reason=still["reason"]), "error")
    if not result.admitted and not result.still_rejected:
        flash(_("Nothing to re-check."), "warn")
    return redirect(url_for(".quarantined", shop_id=shop_id))
