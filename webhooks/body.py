"""Reading a webhook body: never more than the limit in memory, and JSON that nests no deeper
than any real delivery and holds only text that can be stored (UTF-8)."""

from __future__ import annotations

import json
import re
from typing import Any

from flask import request

MAX_DEPTH = 32  # real deliveries nest about five deep
# where a lone UTF-16 surrogate can come from in UTF-8 JSON: a \uD800-\uDFFF escape, or its
# UTF-8 form (which json.loads decodes with "surrogatepass")
_MAYBE_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}|\xed[\xa0-\xbf]")


class UnreadableBody(ValueError):
    """The body is not JSON we can read; the message says why."""


def read_limited_body(limit: int) -> bytes | None:
    """The raw body, or None when it is larger than `limit` bytes."""
    if (request.content_length or 0) > limit:
        return None
    raw = request.stream.read(limit + 1)
    return None if len(raw) > limit else raw


def parse_json(raw: bytes) -> object:
    """The body's JSON, refused when it is not JSON or nests deeper than MAX_DEPTH. A lone
    surrogate (a broken emoji, `"\\ud83d"`) becomes U+FFFD, as an undecodable byte would, so the
    rest of the text still arrives and can be stored."""
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise UnreadableBody("not JSON") from exc
    if depth(body) > MAX_DEPTH:
        raise UnreadableBody(f"nested deeper than {MAX_DEPTH} levels")
    if json.detect_encoding(raw) != "utf-8" or _MAYBE_SURROGATE.search(raw):
        return without_lone_surrogates(body)
    return body


def depth(value: Any) -> int:
    """How deep lists and objects nest (counted up to one past MAX_DEPTH), without recursing."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if level <= MAX_DEPTH:
                stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def without_lone_surrogates(value: Any) -> Any:
    """The value with every lone surrogate in its texts and keys replaced by U+FFFD (its depth is
    bounded by MAX_DEPTH, so the recursion is)."""
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, list):
        return [without_lone_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {without_lone_surrogates(key): without_lone_surrogates(item) for key, item in value.items()}
    return value
