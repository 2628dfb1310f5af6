"""The console's session: Flask's signed cookie, keyed by a key derived from SECRET_KEY, and
marked Secure whenever the request came over https (directly or through a proxy that says so)."""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import Flask, request
from flask.sessions import SecureCookieSessionInterface

from config import ConfigError, Settings
from wiring import local_secret


class ConsoleSessions(SecureCookieSessionInterface):
    """Signed cookie sessions whose cookie is Secure when served over https."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or served_over_https()


def served_over_https() -> bool:
    """The request reached us over https, or the proxy in front says it did (which can only
    make the cookie stricter, so the header needs no trust)."""
    forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return request.is_secure or forwarded == "https"


def session_key(settings: Settings) -> bytes:
    """The key that signs console sessions and CSRF tokens, derived from SECRET_KEY (the one
    generated for local runs when unset), never the key itself nor the admin token."""
    secret = settings.secret_key or (local_secret(settings.state_dir, "secret_key") if settings.is_local else None)
    if not secret:
        raise ConfigError("SECRET_KEY is required when REDIS_URL is set")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"abaha-kiotviet-sync",
                info=b"console-sessions-v1").derive(secret.encode("utf-8"))  # fmt: skip
