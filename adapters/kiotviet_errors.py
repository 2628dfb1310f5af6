"""KiotViet's answers turned into the service's errors, with KiotViet's own wording kept."""

from __future__ import annotations

from typing import Any

import requests

from adapters.errors import KiotVietNotFound, KiotVietRejected, Throttled, TransientError
from adapters.http import is_transient, retry_after
from schemas.kiotviet import lower_keys


def translate(method: str, path: str, response: requests.Response) -> Any:
    """The JSON body of a success, or the error the status means."""
    status = response.status_code
    if 200 <= status < 300:
        return response.json() if response.content.strip() else {}
    message = kiotviet_message(response)
    if status == 429:
        raise Throttled(f"KiotViet answered 429 to {method} {path}", retry_after(response))
    if is_transient(status):
        raise TransientError(f"KiotViet answered {status} to {method} {path}", retry_after(response))
    if status == 404:
        raise KiotVietNotFound(f"KiotViet has no {path}", status, message)
    if status in (401, 403):
        raise KiotVietRejected(
            f"KiotViet refused the connection's credentials ({status}); save the connection "
            "again with a valid Client ID and client secret", status, message)  # fmt: skip
    raise KiotVietRejected(f"KiotViet refused {method} {path}: {message or status}", status, message)


def kiotviet_message(response: requests.Response) -> str | None:
    """KiotViet's own wording: `responseStatus.message`, or a bare `message`."""
    try:
        body = lower_keys(response.json())
    except ValueError:
        return response.text[:300] or None
    if not isinstance(body, dict):
        return None
    status = body.get("responsestatus") or {}
    found = status.get("message") if isinstance(status, dict) else None
    return found or body.get("message") or body.get("error_description") or body.get("error")
