"""The console's blueprint: CSRF on every form it receives, its error pages, and what every
template is given (the language, the sign-in state, the time filters)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, render_template, request
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError, CSRFProtect

from adapters.connections import Connection
from admin import auth
from admin.console import i18n
from wiring import current_services

blueprint = Blueprint(auth.CONSOLE, __name__, url_prefix="/admin", template_folder="templates",
                      static_folder="static", static_url_path="/static")  # fmt: skip
csrf = CSRFProtect()


@blueprint.before_request
def check_csrf() -> None:
    """Every form the console receives carries the session's CSRF token (field or header)."""
    if request.method not in auth.SAFE_METHODS:
        csrf.protect()


@blueprint.after_request
def no_store(response: Any) -> Any:
    """Pages hold shop data (and once a token): no caching, no framing, nothing from elsewhere."""
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault(
        "Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    )
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    return response


@blueprint.errorhandler(CSRFError)
def csrf_refused(exc: CSRFError) -> tuple[str, int]:
    return render_template("console/error.html", title=_("The form expired"),
                           message=_("The form was sent without a valid security token (it may have expired, or "
                                     "come from another site). Reload the page and try again.")), 400  # fmt: skip


@blueprint.app_template_filter("when")
def when_filter(value: Any) -> str:
    return i18n.when(value)


@blueprint.app_template_filter("ago")
def ago_filter(value: float | None) -> str:
    return i18n.ago(value)


@blueprint.app_template_filter("duration")
def duration_filter(value: float | None) -> str:
    return i18n.duration(value)


@blueprint.context_processor
def page_context() -> dict[str, Any]:
    admin_token = current_services().settings.admin_token
    return {"languages": i18n.LANGUAGES, "language": i18n.chosen_language(),
            "signed_in": bool(admin_token) and auth.signed_in(admin_token or "")}  # fmt: skip


def connection_or_404(shop_id: str) -> Connection:
    """The shop's connection, or a 404 page."""
    connection = current_services().connections.get(shop_id)
    if connection is None:
        abort(404)
    return connection


@blueprint.errorhandler(404)
def not_found(exc: Exception) -> tuple[str, int]:
    return render_template("console/error.html", title=_("Not found"),
                           message=_("There is no such page or shop.")), 404  # fmt: skip
