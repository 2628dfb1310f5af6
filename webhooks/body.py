"""Reading a request body without ever holding more than the limit in memory."""

from __future__ import annotations

from flask import request


def read_limited_body(limit: int) -> bytes | None:
    """The raw body, or None when it is larger than `limit` bytes."""
    if (request.content_length or 0) > limit:
        return None
    raw = request.stream.read(limit + 1)
    return None if len(raw) > limit else raw
