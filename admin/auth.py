"""`ADMIN_TOKEN` guards every /admin route, the RQ dashboard included."""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from flask import Response, jsonify, request

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def admin_guard(admin_token: str) -> Response | None:
    """A before-request hook body: None lets the request through."""
    if not request.path.startswith("/admin"):
        return None
    bearer = _bearer()
    basic = request.authorization.password if request.authorization and request.authorization.type == "basic" else None
    if bearer is not None and _same(bearer, admin_token):
        return None
    if basic is not None and _same(basic, admin_token):
        # browsers resend basic credentials on their own: a state change must come from our own pages
        if request.method in SAFE_METHODS or _same_origin():
            return None
        return _refuse(403, "cross-site request refused")
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


def _same_origin() -> bool:
    if request.headers.get("Sec-Fetch-Site") in ("same-origin", "none"):
        return True
    source = request.headers.get("Origin") or request.headers.get("Referer")
    return bool(source) and urlsplit(source).netloc == request.host


def _refuse(status: int, reason: str) -> Response:
    response = jsonify(errors=[reason])
    response.status_code = status
    return response
