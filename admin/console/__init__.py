"""The operators' console at /admin/: server-rendered pages to connect a shop, start a full sync
and watch it, and see and replay what failed or was quarantined. Vietnamese by default."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from flask import Flask
from flask_babel import Babel

from admin.console import connect, failures, pages, quarantine, syncing  # noqa: F401  (they add the routes)
from admin.console.blueprint import blueprint, csrf
from admin.console.i18n import DEFAULT_LANGUAGE, chosen_language
from admin.console.session import ConsoleSessions, session_key
from wiring import Services

TRANSLATIONS = Path(__file__).parent / "translations"


def register_console(app: Flask, services: Services) -> None:
    """Sessions keyed from SECRET_KEY, CSRF on every console form, Babel, and the pages."""
    app.secret_key = session_key(services.settings)
    app.session_interface = ConsoleSessions()
    app.config.update(
        SESSION_COOKIE_NAME="sync_console",
        SESSION_COOKIE_PATH="/admin",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
        WTF_CSRF_CHECK_DEFAULT=False,  # webhooks and the JSON API have no forms; the console checks its own
        WTF_CSRF_TIME_LIMIT=None,  # a token lives as long as its session
    )
    csrf.init_app(app)
    Babel(app, locale_selector=chosen_language, default_locale=DEFAULT_LANGUAGE,
          default_timezone="Asia/Ho_Chi_Minh", default_translation_directories=str(TRANSLATIONS))  # fmt: skip
    app.register_blueprint(blueprint)
