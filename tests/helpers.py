"""Small helpers shared by the unit and integration tests."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

FIXTURES = Path(__file__).parent / "fixtures"
T = TypeVar("T")


def sample(name: str) -> dict[str, Any]:
    """A sample body from tests/fixtures, e.g. sample("kiotviet/product.update")."""
    body: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return body


def sign(body: bytes, secret: str) -> str:
    """KiotViet's signature as live deliveries carry it (and the sandbox sends it): `sha1=`
    followed by the hex HMAC-SHA256 keyed by the secret's text."""
    return "sha1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def wait_for(probe: Callable[[], T | None], deadline: float = 20.0, interval: float = 0.05) -> T:
    """Poll `probe` until it returns something truthy; fail after `deadline` seconds."""
    end = time.monotonic() + deadline
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"condition not met within {deadline}s")
        time.sleep(interval)
