"""Builds the objects a process needs from its settings, once, at startup."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

import redis
import structlog
from flask import current_app
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from adapters.catalog import CatalogStore
from adapters.connections import ConnectionStore, ShopDirectory
from adapters.embedded_redis import ensure_embedded_redis
from adapters.inbox import EventInbox
from adapters.links import LinkStore
from adapters.pending import PendingStore
from adapters.quarantine import QuarantineStore
from adapters.redis_connect import open_redis
from adapters.state import SyncState
from adapters.vault import Vault
from config import ConfigError, Settings

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Services:
    """The process-wide collaborators, shared by views, commands and jobs."""

    settings: Settings
    redis_url: str
    redis: redis.Redis
    connections: ConnectionStore
    shops: ShopDirectory
    state: SyncState
    pending: PendingStore
    inbox: EventInbox
    quarantine: QuarantineStore
    links: LinkStore
    catalog: CatalogStore
    vault: Vault


def build_services(settings: Settings, *, answering_webhooks: bool = False) -> Services:
    """Connect to Redis (embedded for local runs) and assemble the collaborators."""
    url = settings.redis_url or ensure_embedded_redis(settings.state_dir)
    return services_on(settings, redis_client(url, answering_webhooks=answering_webhooks), url)


def redis_client(url: str, *, answering_webhooks: bool = False) -> redis.Redis:
    """A client for `url` (a Redis URL or `redis+sentinel://`). The web app's gives up within about a
    second a command, so a stalled Redis becomes a 503 well inside KiotViet's 5-second limit;
    workers may wait longer."""
    if answering_webhooks:
        retry = Retry(ExponentialBackoff(cap=0.1, base=0.02), retries=1)
        return open_redis(url, socket_timeout=1.0, socket_connect_timeout=0.5, retry=retry, health_check_interval=30)
    retry = Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=3)
    return open_redis(url, socket_timeout=5, socket_connect_timeout=2, retry=retry, health_check_interval=30)


def services_on(settings: Settings, client: redis.Redis, url: str) -> Services:
    """The collaborators over an existing Redis client."""
    vault = Vault(_secret_key(settings))
    connections = ConnectionStore(client, vault)
    pending = PendingStore(client)
    return Services(
        settings=settings,
        redis_url=url,
        redis=client,
        connections=connections,
        shops=ShopDirectory(connections),
        state=SyncState(client),
        pending=pending,
        inbox=EventInbox(client, pending),
        quarantine=QuarantineStore(client),
        links=LinkStore(client),
        catalog=CatalogStore(client),
        vault=vault,
    )


def current_services() -> Services:
    """The services of the Flask app handling the current request or command."""
    services: Services = current_app.extensions["sync"]
    return services


def _secret_key(settings: Settings) -> str:
    if settings.secret_key:
        return settings.secret_key
    if not settings.is_local:
        raise ConfigError("SECRET_KEY is required when REDIS_URL is set")
    return local_secret(settings.state_dir, "secret_key")


def local_secret(state_dir: str, name: str) -> str:
    """A secret generated once for a local run and kept beside its embedded Redis, so a
    restart can still decrypt what the previous run stored."""
    path = Path(state_dir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
        log.warning("config.generated_local_secret", name=name, path=str(path))
    return path.read_text().strip()
