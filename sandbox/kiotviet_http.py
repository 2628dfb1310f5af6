"""What the simulated KiotViet's public routes share: the token check, KiotViet's error bodies,
the log of calls received, and lists filtered, ordered and paged as the real API answers them."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, NoReturn

from flask import Flask, Response, abort, g, jsonify, request

from sandbox.kiotviet_data import VIETNAM, Call, KiotVietSandbox, Retailer
from sandbox.kiotviet_delivery import describe, prepare, send

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
Item = dict[str, Any]


def faultable(path: str) -> bool:
    """The public API and the token endpoint; never the `/_sandbox/` control routes."""
    return path.startswith(("/kiotviet/", "/kiotviet-id/"))


def error_body(status: int, message: str = "sandbox fault") -> dict[str, Any]:
    codes = {400: "BadRequest", 401: "Unauthorized", 404: "NotFound", 429: "TooManyRequests"}
    return {"responseStatus": {"errorCode": codes.get(status, "InternalServerError"), "message": message}}


def refuse(message: str, status: int = 400) -> tuple[Response, int]:
    return jsonify(error_body(status, message)), status


def not_found(message: str = "Không tìm thấy dữ liệu") -> NoReturn:
    abort(Response(json.dumps(error_body(404, message), ensure_ascii=False), 404, content_type="application/json"))


def authenticated(sandbox: KiotVietSandbox) -> Retailer:
    """The retailer of the request's token and `Retailer` header, or a 401 like KiotViet's."""
    token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    name = sandbox.tokens.get(token)
    if name is None or name != request.headers.get("Retailer"):
        body = error_body(401, "Token không hợp lệ")
        abort(Response(json.dumps(body, ensure_ascii=False), 401, content_type="application/json"))
    retailer = sandbox.retailers[name]
    if request.method == "GET":
        with sandbox.lock:
            retailer.get_requests += 1
    return retailer


def install_call_log(app: Flask, sandbox: KiotVietSandbox) -> None:
    """Log each public-API request under the retailer it names, with the status it got; install
    before the faults, so a faulted request is logged with the fault's status."""

    def before() -> None:
        retailer = _caller(sandbox) if faultable(request.path) else None
        if retailer is None:
            return
        call = Call(request.method, request.path, request.query_string.decode(errors="replace"))
        with sandbox.lock:
            retailer.calls.append(call)
        g.kiotviet_call = call

    def after(response: Response) -> Response:
        call: Call | None = g.pop("kiotviet_call", None)
        if call is not None:
            call.status = response.status_code
        return response

    app.before_request(before)
    app.after_request(after)


def _caller(sandbox: KiotVietSandbox) -> Retailer | None:
    name = request.headers.get("Retailer")
    if name:
        return sandbox.retailers.get(name)
    if request.path.endswith("/connect/token"):
        client = request.form.get("client_id")
        return next((r for r in list(sandbox.retailers.values()) if r.client_id == client), None)
    return None


def values(name: str) -> list[str]:
    """A list parameter, repeated (`?status=1&status=3`) or comma-separated (`?status=1,3`)."""
    return [v.strip() for raw in request.args.getlist(name) for v in raw.split(",") if v.strip()]


def page(items: list[Any], view: Callable[[Any], Any] | None = None) -> Response:
    """One page of a list, KiotViet style; `view` shapes only the items of the page."""
    size = _int_arg("pageSize", DEFAULT_PAGE_SIZE)
    size = min(size if size > 0 else DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    offset = max(_int_arg("currentItem", 0), 0)
    chunk = items[offset : offset + size]
    return jsonify(total=len(items), pageSize=size, data=[view(i) for i in chunk] if view else chunk)


def _int_arg(name: str, default: int) -> int:
    try:
        return int(request.args.get(name, default))
    except ValueError:
        return default


def listing(
    retailer: Retailer,
    items: list[Item],
    kind: str,
    removed_key: str,
    *,
    id_key: str = "id",
    view: Callable[[Item], Item] | None = None,
) -> Response:
    """A page of a list, filtered by `lastModifiedFrom`, ordered, with the removed ids when asked."""
    since = since_arg()
    answer = page(ordered(modified_since(items, since), id_key), view).get_json()
    if request.args.get("includeRemoveIds", "").lower() == "true":
        with retailer.lock:
            removed = list(retailer.removed.get(kind, []))
        answer[removed_key] = [i for i, at in removed if since is None or parse_time(at) >= since]
    return jsonify(answer)


def since_arg() -> datetime | None:
    """`lastModifiedFrom` as a moment (a naive time is Vietnam's), or a 400 when unreadable."""
    text = request.args.get("lastModifiedFrom")
    if not text:
        return None
    try:
        return parse_time(text)
    except ValueError:
        abort(Response(json.dumps(error_body(400, f"lastModifiedFrom không hợp lệ: {text}")), 400,
                       content_type="application/json"))  # fmt: skip


def modified_since(items: Iterable[Item], since: datetime | None, key: str = "modifiedDate") -> list[Item]:
    """The items changed at or after `since` (inclusive, as KiotViet's filter is)."""
    if since is None:
        return list(items)
    return [i for i in items if i.get(key) and parse_time(i[key]) >= since]


def ordered(items: list[Item], id_key: str = "id") -> list[Item]:
    """`items` (given in id order) by `orderBy` and `orderDirection`, ties by id."""
    by = request.args.get("orderBy")
    descending = request.args.get("orderDirection", "Asc").lower() == "desc"
    if not by or by.lower() == "id" or by == id_key:
        return items[::-1] if descending else items
    name = next((k for k in (items[0] if items else {}) if k.lower() == by.lower()), by)
    return sorted(items, key=lambda i: (_sortable(name, i.get(name)), i.get(id_key) or 0), reverse=descending)


def _sortable(name: str, value: Any) -> tuple[int, int, Any]:
    # None first, as SQL Server sorts NULL; one kind of value per (rank) so they never meet
    if value is None:
        return (0, 0, 0)
    if isinstance(value, int | float):
        return (1, 0, value)
    if isinstance(value, str) and name.lower().endswith("date"):
        try:
            return (1, 1, parse_time(value))
        except ValueError:
            pass
    return (1, 2, str(value).casefold())


def after(modified: str, since: str) -> bool:
    return parse_time(modified) >= parse_time(since)


def parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", text))
    return moment if moment.tzinfo else moment.replace(tzinfo=VIETNAM)


def answer_change(retailer: Retailer, kind: str, data: list[Any], **extra: Any) -> Response:
    """A control route's answer: the delivery of `kind` it made, or with `?deliver=0` the one it
    would have made (kept in the retailer's log, to send later with `.../redeliver`)."""
    delivery = prepare(retailer, kind, data)
    delivered = send(retailer, delivery) if request.args.get("deliver", "1") != "0" else []
    return jsonify(type=kind, delivered=delivered, delivery=describe(delivery), **extra)
