"""`ADMIN_TOKEN` guards every /admin route, the RQ dashboard and the console included.

Scripts send the token as a bearer token. Browsers use basic auth (any user name, the token as
password) or the console's session, signed in once with the token; both are resent by the browser
on its own, even for a request another site makes it send: such a request is refused when the
browser says it is cross-site, and anything that changes state (any non-GET, and the dashboard's
GET `/requeue/<queue>`) needs proof it comes from our pages. A console page asked for without
credentials sends the browser to the login page.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlsplit

from flask import Response, current_app, jsonify, redirect, request, session, url_for
from werkzeug.wrappers import Response as BaseResponse

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
STATE_CHANGING_PATHS = ("/requeue", "/delete", "/empty", "/compact")
GUARDED_PREFIXES = ("/admin", "/metrics")  # /metrics names shops (SPEC §4.3)

CONSOLE = "console"  # the console blueprint's name
LOGIN_ENDPOINT = f"{CONSOLE}.login"
OPEN_ENDPOINTS = (LOGIN_ENDPOINT, f"{CONSOLE}.static", f"{CONSOLE}.language")
SESSION_MARK = "signed_in"  # holds an HMAC of the token under the session key, never the token


def admin_guard(admin_token: str | None) -> BaseResponse | None:
    """A before-request hook body: None lets the request through."""
    if not request.path.startswith(GUARDED_PREFIXES):
        return None
    if admin_token is None:
        return _refuse(401, "ADMIN_TOKEN is not set, so nothing here is served")
    bearer = _bearer()
    if bearer is not None and _same(bearer, admin_token):
        return None
    if _basic_ok(admin_token) or signed_in(admin_token):
        return _from_elsewhere(any_method=True)
    if request.endpoint in OPEN_ENDPOINTS:
        return _from_elsewhere(any_method=False)
    if request.blueprint == CONSOLE:
        return _from_elsewhere(any_method=False) or _to_login()
    response = _refuse(401, "missing or wrong admin token")
    if request.path.startswith("/admin/rq"):
        response.headers["WWW-Authenticate"] = 'Basic realm="sync admin"'
    return response


def sign_in(admin_token: str) -> None:
    """Start a console session (the language chosen before is kept)."""
    language = session.get("lang")
    session.clear()
    if language:
        session["lang"] = language
    session[SESSION_MARK] = _mark(admin_token)
    session.permanent = True


def sign_out() -> None:
    """End the console session, keeping only the language."""
    language = session.get("lang")
    session.clear()
    if language:
        session["lang"] = language


def is_admin_token(given: str, admin_token: str) -> bool:
    """Compare in constant time."""
    return _same(given, admin_token)


def signed_in(admin_token: str) -> bool:
    """Whether the request carries a console session signed in with the current token."""
    mark = session.get(SESSION_MARK) if current_app.secret_key else None
    return isinstance(mark, str) and _same(mark, _mark(admin_token))


def _mark(admin_token: str) -> str:
    """Proof of a sign-in that is void once the token changes, and tells nothing of the token."""
    key = current_app.secret_key
    key_bytes = key if isinstance(key, bytes) else str(key).encode("utf-8")
    return hmac.new(key_bytes, b"console-sign-in\0" + admin_token.encode("utf-8"), hashlib.sha256).hexdigest()


def _basic_ok(admin_token: str) -> bool:
    auth = request.authorization
    return auth is not None and auth.type == "basic" and auth.password is not None and _same(auth.password, admin_token)


def _from_elsewhere(*, any_method: bool) -> Response | None:
    """403 for what a browser was made to send by another site: with credentials the browser
    adds by itself (`any_method`) any cross-site request; otherwise those that change state."""
    changes_state = request.method not in SAFE_METHODS or any(p in request.path for p in STATE_CHANGING_PATHS)
    if (any_method and _cross_site()) or (changes_state and (_cross_site() or not _same_origin())):
        return _refuse(403, "cross-site request refused")
    return None


def _to_login() -> BaseResponse:
    if request.method not in SAFE_METHODS:
        return redirect(url_for(LOGIN_ENDPOINT), 303)
    return redirect(url_for(LOGIN_ENDPOINT, next=request.full_path.rstrip("?")))


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def _source_host() -> str | None:
    source = request.headers.get("Origin") or request.headers.get("Referer")
    return urlsplit(source).netloc if source else None


def _cross_site() -> bool:
    if request.headers.get("Sec-Fetch-Site") in ("cross-site", "same-site"):
        return True
    host = _source_host()
    return host is not None and host != request.host


def _same_origin() -> bool:
    if request.headers.get("Sec-Fetch-Site") in ("same-origin", "none"):
        return True
    return _source_host() == request.host


def _refuse(status: int, reason: str) -> Response:
    response = jsonify(errors=[reason])
    response.status_code = status
    return response
