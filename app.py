"""The web app: `create_app()` assembles it from settings."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

import redis
import rq_dashboard
import rq_dashboard.web
import structlog
from flask import Flask, Response, g, jsonify, request
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from rq.serializers import JSONSerializer

from adapters.inbox import live_workers
from admin import auth, cli, views
from admin.console import register_console
from admin.metrics import SyncCollector
from config import Settings
from logs import configure_logging, log_format_for
from webhooks import abaha, kiotviet
from wiring import Services, build_services, current_services

log = structlog.get_logger(__name__)
REQUEST_ID_HEADER = "X-Request-ID"
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")  # what a proxy or tracer sends; no spaces


def create_app(overrides: Mapping[str, Any] | None = None, services: Services | None = None) -> Flask:
    """Build the web app from the environment, with `overrides` replacing settings; tests may
    hand in ready `services` (e.g. on fakeredis)."""
    settings = services.settings if services else Settings.from_env().with_overrides(overrides)
    configure_logging(log_format_for(settings.log_format, explicit=settings.log_format_chosen, local=settings.is_local))
    app = Flask(__name__)
    register_request_ids(app)
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


def register_request_ids(app: Flask) -> None:
    """Bind a `request_id` to every log line of a request (the caller's `X-Request-ID` when it
    looks like an id, else a new one) and answer it in `X-Request-ID`."""

    @app.before_request
    def bind_request_id() -> None:
        given = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = given if SANE_REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        g.log_tokens = structlog.contextvars.bind_contextvars(request_id=g.request_id)

    @app.after_request
    def answer_request_id(response: Response) -> Response:
        if "request_id" in g:
            response.headers[REQUEST_ID_HEADER] = g.request_id
        return response

    @app.teardown_request
    def unbind_request_id(_: BaseException | None) -> None:
        tokens = g.pop("log_tokens", None)
        if tokens is not None:
            structlog.contextvars.reset_contextvars(**tokens)


def register_health(app: Flask, redis_client: redis.Redis) -> None:
    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok")

    @app.get("/readyz")
    def readyz() -> Response | tuple[Response, int]:
        """Ready when Redis answers. Whether any worker is alive is said, not required: without
        one, deliveries are still accepted and kept, which beats refusing them."""
        try:
            redis_client.ping()
            workers = len(live_workers(redis_client))
        except redis.exceptions.RedisError:
            return jsonify(status="unavailable", redis=False), 503
        if not workers:
            return jsonify(status="ready", redis=True, workers=0, workers_alive=False,
                           warning="no worker is alive: changes are accepted but not applied")  # fmt: skip
        return jsonify(status="ready", redis=True, workers=workers, workers_alive=True)


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
