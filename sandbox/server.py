"""One HTTP server for both simulated peers, run in a background thread."""

from __future__ import annotations

import logging
import threading

from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from sandbox import abaha, abaha_sales, faults, kiotviet, kiotviet_data, kiotviet_http, kiotviet_sales


def create_sandbox_app(kv: kiotviet_data.KiotVietSandbox, ab: abaha.AbahaSandbox) -> Flask:
    app = Flask("sandbox")
    blueprints = [
        *kiotviet.create_blueprints(kv), kiotviet_sales.api_routes(kv), kiotviet_sales.control_routes(kv),
        *abaha.create_blueprints(ab), abaha_sales.api_routes(ab), abaha_sales.control_routes(ab),
    ]  # fmt: skip
    for blueprint in blueprints:
        app.register_blueprint(blueprint)
    # the call log first: its after-request hook then runs last and sees a fault's status
    kiotviet_http.install_call_log(app, kv)
    faults.install(app, "kiotviet", kv.lock, kv.faults, kiotviet_http.faultable, kiotviet_http.error_body)
    faults.install(app, "abaha", ab.lock, ab.faults, abaha.faultable, abaha.error_body)
    return app


class SandboxServer:
    """The simulated KiotViet and Abaha on 127.0.0.1:`port` (0 picks a free port)."""

    def __init__(self, port: int = 0) -> None:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log line per request
        self.kiotviet = kiotviet_data.KiotVietSandbox()
        self.abaha = abaha.AbahaSandbox()
        self._server: BaseWSGIServer = make_server(
            "127.0.0.1", port, create_sandbox_app(self.kiotviet, self.abaha), threaded=True
        )
        self._thread = threading.Thread(target=self._server.serve_forever, name="sandbox", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> SandboxServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)
