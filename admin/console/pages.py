"""Signing in and out, the language, and the shops at a glance."""

from __future__ import annotations

from collections import Counter
from typing import Any

import structlog
from flask import redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from admin import auth
from admin.console.blueprint import blueprint
from admin.console.forms import LanguageForm, LoginForm, add_error
from admin.console.i18n import LANGUAGES
from admin.failed import failed_changes
from admin.health import ShopHealth, shop_health
from wiring import current_services

log = structlog.get_logger(__name__)


@blueprint.route("/login", methods=["GET", "POST"])
def login() -> Response | str | tuple[str, int]:
    """The admin token, once; then a signed session cookie carries the sign-in."""
    admin_token = current_services().settings.admin_token or ""
    form = LoginForm(next=request.args.get("next", ""))
    if auth.signed_in(admin_token) and request.method == "GET":
        return redirect(safe_next(form.next.data))
    if form.validate_on_submit():
        if auth.is_admin_token(form.token.data or "", admin_token):
            auth.sign_in(admin_token)
            log.info("console.signed_in")
            return redirect(safe_next(form.next.data))
        log.warning("console.sign_in_refused")
        add_error(form.token, _("That is not the admin token."))
        return render_template("console/login.html", form=form), 401
    return render_template("console/login.html", form=form)


@blueprint.post("/logout")
def logout() -> Response:
    auth.sign_out()  # the blueprint checked the form's CSRF token
    return redirect(url_for(".login"))


@blueprint.post("/language")
def language() -> Response:
    """Switch the console's language (kept in the session, signed in or not)."""
    form = LanguageForm()
    if form.validate_on_submit() and form.lang.data in LANGUAGES:
        session["lang"] = form.lang.data
    return redirect(safe_next(form.next.data))


@blueprint.get("/")
def shops() -> str:
    """Every connection with its health at a glance."""
    services = current_services()
    waiting = Counter(change.shop_id for change in failed_changes(services.redis))
    rows = []
    for connection in services.connections.all():
        health = shop_health(services, connection.shop_id)
        failed = waiting.get(connection.shop_id, 0)
        rows.append({"connection": connection, "health": health, "failed": failed, "status": status_of(health, failed)})
    return render_template("console/shops.html", rows=rows)


def status_of(health: ShopHealth | None, failed: int) -> str:
    """`bad` when changes fail or wait for a retry, `warn` when something needs a look, else `ok`."""
    if health is None or health.failures_last_hour or failed:
        return "bad"
    if health.quarantined or health.warnings or health.unresolved_orders:
        return "warn"
    return "ok"


def safe_next(wanted: Any) -> str:
    """Where to go after signing in or switching language: a console path, never another site."""
    if isinstance(wanted, str) and wanted.startswith("/admin") and not wanted.startswith("//"):
        return wanted
    return url_for(".shops")
