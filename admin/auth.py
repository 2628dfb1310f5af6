"""`ADMIN_TOKEN` guards every /admin route, the RQ dashboard included.

Scripts send the token as a bearer token. Browsers use basic auth (any user name, the token as
password) and resend it on their own, even for a request another site makes them send: such a
request is refused when the browser says it is cross-site, and anything that changes state
(any non-GET, and the dashboard's GET `/requeue/<queue>`) needs proof it comes from our pages.
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from flask import Response, jsonify, request

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
STATE_CHANGING_PATHS = ("/requeue", "/delete", "/empty", "/compact")


GUARDED_PREFIXES = ("/admin", "/metrics")  # /metrics names shops (SPEC §4.3)


def admin_guard(admin_token: str | None) -> Response | None:
    """A before-request hook body: None lets the request through."""
    if not request.path.startswith(GUARDED_PREFIXES):
        return None
    if admin_token is None:
        return _refuse(401, "ADMIN_TOKEN is not set, so nothing here is served")
    bearer = _bearer()
    basic = request.authorization.password if request.authorization and request.authorization.type == "basic" else None
    if bearer is not None and _same(bearer, admin_token):
        return None
    if basic is not None and _same(basic, admin_token):
        changes_state = request.method not in SAFE_METHODS or any(p in request.path for p in STATE_CHANGING_PATHS)
        if _cross_site() or (changes_state and not _same_origin()):
            return _refuse(403, "cross-site request refused")
        return None
    response = _refuse(401, "missing or wrong admin token")
    if request.path.startswith("/admin/rq"):
        response.headers["WWW-Authenticate"] = 'Basic realm="sync admin"'
    return response


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
