"""Settings of the service, read from the environment in one place."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from adapters.redis_connect import is_sentinel_url, parse_sentinel_url

DEFAULT_KIOTVIET_API_URL = "https://public.kiotapi.com"
DEFAULT_KIOTVIET_TOKEN_URL = "https://id.kiotviet.vn/connect/token"
MAX_BODY_BYTES = 1024 * 1024
# how long a call to KiotViet or Abaha waits for an answer; the timing rules
# (tests/unit/test_timing_rules.py) are checked at the longest allowed
MAX_PEER_READ_TIMEOUT = 30


class ConfigError(ValueError):
    """A setting is missing or malformed."""


@dataclass(frozen=True)
class Settings:
    """Everything the web app and the workers read from the environment."""

    redis_url: str | None
    kiotviet_api_url: str
    kiotviet_token_url: str
    abaha_api_url: str | None
    public_base_url: str | None
    admin_token: str | None
    secret_key: str | None
    log_format: str
    reconcile_interval: int
    state_dir: str
    kiotviet_hourly_budget: int = 5000
    max_body_bytes: int = MAX_BODY_BYTES
    peer_read_timeout: int = MAX_PEER_READ_TIMEOUT
    log_format_chosen: bool = True  # LOG_FORMAT was set; else a terminal of a local run gets console

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build the settings from `environ` (the process environment by default)."""
        env = os.environ if environ is None else environ
        log_format = env.get("LOG_FORMAT", "").strip().lower() or "json"
        if log_format not in ("json", "console"):
            raise ConfigError(f"LOG_FORMAT must be 'json' or 'console', not {log_format!r}")
        reconcile_interval = _whole(env, "RECONCILE_INTERVAL", 900)
        hourly_budget = _whole(env, "KIOTVIET_HOURLY_BUDGET", 5000)
        if hourly_budget < 100:
            raise ConfigError("KIOTVIET_HOURLY_BUDGET must be at least 100 requests an hour")
        read_timeout = _whole(env, "PEER_READ_TIMEOUT", MAX_PEER_READ_TIMEOUT)
        if not 1 <= read_timeout <= MAX_PEER_READ_TIMEOUT:
            raise ConfigError(f"PEER_READ_TIMEOUT must be between 1 and {MAX_PEER_READ_TIMEOUT} seconds")
        redis_url = _blank_to_none(env.get("REDIS_URL"))
        if redis_url and is_sentinel_url(redis_url):
            try:
                parse_sentinel_url(redis_url)
            except ValueError as exc:
                raise ConfigError(str(exc)) from exc
        return cls(
            redis_url=redis_url,
            kiotviet_api_url=env.get("KIOTVIET_API_URL", DEFAULT_KIOTVIET_API_URL).rstrip("/"),
            kiotviet_token_url=env.get("KIOTVIET_TOKEN_URL", DEFAULT_KIOTVIET_TOKEN_URL),
            abaha_api_url=_strip_slash(_blank_to_none(env.get("ABAHA_API_URL"))),
            public_base_url=_strip_slash(_blank_to_none(env.get("PUBLIC_BASE_URL"))),
            admin_token=_blank_to_none(env.get("ADMIN_TOKEN")),
            secret_key=_blank_to_none(env.get("SECRET_KEY")),
            log_format=log_format,
            reconcile_interval=reconcile_interval,
            state_dir=env.get("LOCAL_STATE_DIR", os.path.join(os.getcwd(), ".local")),
            kiotviet_hourly_budget=hourly_budget,
            peer_read_timeout=read_timeout,
            log_format_chosen=bool(env.get("LOG_FORMAT", "").strip()),
        )

    @property
    def is_local(self) -> bool:
        """A local run: no Redis configured, so an embedded one is started."""
        return self.redis_url is None

    def with_overrides(self, overrides: Mapping[str, Any] | None) -> Settings:
        """Return a copy with some fields replaced (used by tests and the local stack)."""
        return replace(self, **dict(overrides or {}))


def _whole(env: Mapping[str, str], name: str, default: int) -> int:
    try:
        value = int(env.get(name, str(default)))
    except ValueError as exc:
        raise ConfigError(f"{name} must be a whole number") from exc
    if value < 0:
        raise ConfigError(f"{name} must not be negative")
    return value


def _blank_to_none(value: str | None) -> str | None:
    return value if value and value.strip() else None


def _strip_slash(value: str | None) -> str | None:
    return value.rstrip("/") if value else None
