"""The web app: `create_app()` assembles it from settings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import redis
import rq_dashboard
import rq_dashboard.web
import structlog
from flask import Flask, Response, jsonify, request
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from rq.serializers import JSONSerializer

from admin import auth, cli, views
from admin.console import register_console
from admin.metrics import SyncCollector
from config import Settings
from logs import configure_logging
from webhooks import abaha, kiotviet
from wiring import Services, build_services, current_services

log = structlog.get_logger(__name__)


def create_app(overrides: Mapping[str, Any] | None = None, services: Services | None = None) -> Flask:
    """Build the web app from the environment, with `overrides` replacing settings; tests may
    hand in ready `services` (e.g. on fakeredis)."""
    settings = services.settings if services else Settings.from_env().with_overrides(overrides)
    configure_logging(settings.log_format)
    app = Flask(__name__)
    services = services or build_services(settings, answering_webhooks=True)
    app.extensions["sync"] = services
    app.register_blueprint(kiotviet.blueprint)
    app.register_blueprint(abaha.blueprint)
    register_health(app, services.redis)
    register_unavailable(app)
    register_metrics(app)
    cli.register_commands(app)
    app.before_request(lambda: auth.admin_guard(settings.admin_token))
    if settings.admin_token:
        register_admin(app, services)
    return app


def register_admin(app: Flask, services: Services) -> None:
    app.register_blueprint(views.blueprint)
    rq_dashboard.web.config.serializer = JSONSerializer
    # the dashboard's own Requeue reads jobs without the JSON serializer (and so loses what a job
    # keeps); these take its place and replay the way the API and the CLI do
    app.register_blueprint(views.dashboard_replays, url_prefix="/admin/rq")
    app.register_blueprint(rq_dashboard.blueprint, url_prefix="/admin/rq")
    app.redis_conn = services.redis  # type: ignore[attr-defined]  # where rq-dashboard looks
    app.config["RQ_DASHBOARD_REDIS_URL"] = (services.redis_url,)
    register_console(app, services)


def register_health(app: Flask, redis_client: redis.Redis) -> None:
    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok")

    @app.get("/readyz")
    def readyz() -> Response | tuple[Response, int]:
        try:
            redis_client.ping()
        except redis.exceptions.RedisError:
            return jsonify(status="unavailable", redis=False), 503
        return jsonify(status="ready", redis=True)


def register_unavailable(app: Flask) -> None:
    """Any page or API call that meets an unreachable Redis answers 503, never a 500."""

    @app.errorhandler(redis.exceptions.RedisError)
    def redis_unavailable(exc: redis.exceptions.RedisError) -> tuple[Response, int]:
        log.warning("redis.unavailable", path=request.path, error=type(exc).__name__)
        response = jsonify(errors=["the service cannot reach its Redis now; try again shortly"])
        response.headers["Retry-After"] = "30"
        return response, 503


def register_metrics(app: Flask) -> None:
    @app.get("/metrics")
    def metrics() -> Response:
        registry = CollectorRegistry()
        registry.register(SyncCollector(current_services()))
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
