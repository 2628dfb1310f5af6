"""One HTTP server for both simulated peers, run in a background thread."""

from __future__ import annotations

import logging
import threading

from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from sandbox import abaha, kiotviet


def create_sandbox_app(kv: kiotviet.KiotVietSandbox, ab: abaha.AbahaSandbox) -> Flask:
    app = Flask("sandbox")
    for blueprint in kiotviet.create_blueprints(kv) + abaha.create_blueprints(ab):
        app.register_blueprint(blueprint)
    return app


class SandboxServer:
    """The simulated KiotViet and Abaha on 127.0.0.1:`port` (0 picks a free port)."""

    def __init__(self, port: int = 0) -> None:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log line per request
        self.kiotviet = kiotviet.KiotVietSandbox()
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
