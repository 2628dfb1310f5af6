"""The app as gunicorn serves it, with two routes more, for `bench.wrk_ingest` only: they mark
what a delivery costs below the webhook's own work, on the same server, so the benchmark can say
how much of the gap to the bare endpoint the webhook could ever close.

- `POST /floor/echo/<shop_id>` reads the body and answers the webhook's JSON: any `POST` with a
  body costs this much.
- `POST /floor/append/<shop_id>` also verifies the signature against the shop's secrets (the
  webhook's own `verify`) and keeps the raw body with one `RPUSH`: the least a delivery can
  cost if it is kept before its `200`, as accepted data must be, were it normalized and claimed
  later by a worker instead of in the request.

    gunicorn bench.ingest_floor:app   (started by `bench.wrk_ingest`)
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from webhooks.body import read_limited_body
from webhooks.deliveries import Rejected, verify
from webhooks.kiotviet import SIGNATURE_HEADER
from wiring import current_services
from wsgi import app

floor = Blueprint("ingest_floor", __name__)
APPENDED = "bench:floor:raw:"


@floor.post("/floor/echo/<shop_id>")
def echo(shop_id: str) -> Response:
    read_limited_body(current_services().settings.max_body_bytes)
    return jsonify(status="accepted", events=1, new=1)


@floor.post("/floor/append/<shop_id>")
def append(shop_id: str) -> Response:
    services = current_services()
    raw = read_limited_body(services.settings.max_body_bytes) or b""
    try:
        verify(services, shop_id, raw, request.headers.get(SIGNATURE_HEADER, ""))
    except Rejected:
        return jsonify(status="received")
    services.redis.rpush(APPENDED + shop_id, raw)
    return jsonify(status="accepted", events=1, new=1)


app.register_blueprint(floor)
