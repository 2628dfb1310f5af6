"""KiotViet's token service: client-credentials tokens shared by every process through Redis."""

from __future__ import annotations

import hashlib

import redis
import requests
import structlog

from adapters import keys
from adapters.errors import KiotVietRejected, PermanentError, TransientError
from adapters.http import is_transient, make_session, retry_after, send
from adapters.kiotviet_errors import kiotviet_message
from adapters.vault import Vault

log = structlog.get_logger(__name__)
TOKEN_EARLY_SECONDS = 60  # a token is replaced this long before it expires (one refused is replaced at once)
TOKEN_ATTEMPTS = 1  # the token request is retried once in place
# one process asks for a token at a time; the others wait for it (the lock outlives the request)
REFRESH_LOCK_SECONDS = 120
PROVIDER = "KiotViet"


class KiotVietAuth:
    """Client-credentials tokens, cached in Redis so every process of a deployment shares one."""

    def __init__(self, redis_client: redis.Redis, vault: Vault, token_url: str, session: requests.Session | None = None,
                 read_timeout: float | None = None) -> None:  # fmt: skip
        self._redis = redis_client
        self._vault = vault
        self._token_url = token_url
        self._session = session or make_session(retry_methods=("POST",), attempts=TOKEN_ATTEMPTS,
                                                read_timeout=read_timeout)  # fmt: skip

    def token(self, client_id: str, client_secret: str, stale: str | None = None) -> str:
        """A valid token; `stale` is one KiotViet just refused, to be replaced once."""
        # keyed by both: a wrong secret must not be validated by a token the right one got
        key = keys.kiotviet_token(hashlib.sha256(f"{client_id}\0{client_secret}".encode()).hexdigest()[:32])
        cached = self._cached(key)
        if cached and cached != stale:
            return cached
        with self._redis.lock(key + ":refresh", timeout=REFRESH_LOCK_SECONDS, blocking_timeout=REFRESH_LOCK_SECONDS):
            cached = self._cached(key)  # another process may have refreshed meanwhile
            if cached and cached != stale:
                return cached
            token, lifetime = self._fetch(client_id, client_secret)
            ttl = max(lifetime - TOKEN_EARLY_SECONDS, 1)
            self._redis.set(key, self._vault.encrypt(token), ex=ttl)
            log.info("kiotviet.token_refreshed", expires_in=lifetime)
            return token

    def _cached(self, key: str) -> str | None:
        sealed = self._redis.get(key)
        if not isinstance(sealed, bytes):
            return None
        try:
            return self._vault.decrypt(sealed.decode())
        except PermanentError:
            return None  # sealed under another SECRET_KEY: fetch a new one

    def _fetch(self, client_id: str, client_secret: str) -> tuple[str, int]:
        form = {
            "client_id": client_id,
            "client_secret": client_secret,
            "grant_type": "client_credentials",
            # the guide spells it `scopes`, working clients send `scope`: send both
            "scopes": "PublicApi.Access",
            "scope": "PublicApi.Access",
        }
        response = send(self._session, PROVIDER, "POST", self._token_url, data=form)
        if is_transient(response.status_code):
            raise TransientError("KiotViet's token service is unavailable", retry_after(response))
        if response.status_code != 200:
            raise KiotVietRejected(
                "KiotViet refused the Client ID / client secret (mã bảo mật); check them in "
                "KiotViet's Thiết lập cửa hàng → Thiết lập kết nối API",
                response.status_code,
                kiotviet_message(response),
            )
        body = response.json()
        return str(body["access_token"]), int(body.get("expires_in") or 3600)
