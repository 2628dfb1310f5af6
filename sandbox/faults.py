"""Failures injected into a simulated peer's public API: refusals, slow answers, and failures
after the work was done (the ambiguous kind a client cannot tell from a refusal)."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Flask, Response, g, jsonify, request

UNLIMITED = -1


@dataclass
class Fault:
    """What to do to the next `count` requests whose path contains `path_contains`.

    `status` None answers the real answer (only useful with `delay`); `after_write` does the
    work first and then answers `status`; `probability` fires at random, from a seeded RNG so
    a chaos run can be replayed; `count` -1 fires without limit.
    """

    status: int | None
    count: int
    path_contains: str = ""
    retry_after: int | None = None
    method: str | None = None
    after_write: bool = False
    delay: float = 0.0
    probability: float | None = None
    seed: int | None = None
    fired: int = 0
    rng: random.Random = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)  # noqa: S311 - reproducible chaos, not secrecy

    def applies_to(self, method: str, path: str) -> bool:
        if self.count == 0 or self.path_contains not in path:
            return False
        return self.method is None or self.method.upper() == method.upper()

    def fire(self) -> bool:
        """Whether this request is hit; spends one of `count` when it is."""
        if self.probability is not None and self.rng.random() >= self.probability:
            return False
        if self.count > 0:
            self.count -= 1
        self.fired += 1
        return True


def take(lock: threading.RLock, faults: list[Fault], method: str, path: str) -> Fault | None:
    """The first fault that hits this request, if any."""
    with lock:
        for fault in faults:
            if fault.applies_to(method, path) and fault.fire():
                return fault
    return None


def parse_fault(body: Any) -> Fault:
    """A fault from a control route's JSON; ValueError names what is wrong."""
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    status = _status(body)
    if status is not None and not 100 <= status <= 599:
        raise ValueError("status must be an HTTP status")
    count = int(body.get("count", 1))
    probability = body.get("probability")
    if count < UNLIMITED:
        raise ValueError("count must be -1 (unlimited) or more")
    if probability is not None and not 0 <= float(probability) <= 1:
        raise ValueError("probability must be between 0 and 1")
    delay = float(body.get("delay") or 0)
    if delay < 0:
        raise ValueError("delay must not be negative")
    retry_after = body.get("retry_after")
    return Fault(status=status, count=count, path_contains=str(body.get("path_contains") or ""),
                 retry_after=None if retry_after is None else int(retry_after), method=body.get("method"),
                 after_write=bool(body.get("after_write", False)), delay=delay,
                 probability=None if probability is None else float(probability),
                 seed=body.get("seed"))  # fmt: skip


def _status(body: dict[str, Any]) -> int | None:
    # a fault that only delays answers the real answer, late
    if "status" not in body:
        return None if "delay" in body else 503
    return None if body["status"] is None else int(body["status"])


def describe(fault: Fault) -> dict[str, Any]:
    return {"status": fault.status, "count": fault.count, "path_contains": fault.path_contains,
            "method": fault.method, "retry_after": fault.retry_after, "after_write": fault.after_write,
            "delay": fault.delay, "probability": fault.probability, "seed": fault.seed,
            "fired": fault.fired}  # fmt: skip


def install(
    app: Flask,
    name: str,
    lock: threading.RLock,
    faults: list[Fault],
    applies: Callable[[str], bool],
    error_body: Callable[[int], dict[str, Any]],
) -> None:
    """Hook the peer's faults into `app` for the paths `applies` accepts."""
    key = f"sandbox_fault_{name}"

    def before() -> Response | None:
        if not applies(request.path):
            return None
        fault = take(lock, faults, request.method, request.path)
        if fault is None:
            return None
        if fault.after_write:
            setattr(g, key, fault)  # answered in after(), once the real work is done
            return None
        time.sleep(fault.delay)
        return None if fault.status is None else _answer(fault, fault.status, error_body)

    def after(response: Response) -> Response:
        fault: Fault | None = g.pop(key, None)
        if fault is None:
            return response
        time.sleep(fault.delay)
        return response if fault.status is None else _answer(fault, fault.status, error_body)

    app.before_request(before)
    app.after_request(after)


def _answer(fault: Fault, status: int, error_body: Callable[[int], dict[str, Any]]) -> Response:
    response = jsonify(error_body(status))
    response.status_code = status
    if fault.retry_after is not None:
        response.headers["Retry-After"] = str(fault.retry_after)
    return response


def control_routes(name: str, url_prefix: str, lock: threading.RLock, faults: list[Fault]) -> Blueprint:
    """`POST` adds a fault, `GET` lists them with what is left, `DELETE` clears them all."""
    bp = Blueprint(f"{name}_faults", __name__, url_prefix=url_prefix)

    @bp.post("/faults")
    def add_fault() -> Response | tuple[Response, int]:
        try:
            fault = parse_fault(request.get_json(force=True, silent=True))
        except (ValueError, TypeError) as exc:
            return jsonify(error=str(exc)), 400
        with lock:
            faults.append(fault)
        return jsonify(ok=True, fault=describe(fault))

    @bp.get("/faults")
    def list_faults() -> Response:
        with lock:
            return jsonify(faults=[describe(f) for f in faults])

    @bp.delete("/faults")
    def clear_faults() -> Response:
        with lock:
            cleared = len(faults)
            faults.clear()
        return jsonify(ok=True, cleared=cleared)

    return bp
