"""KiotViet's `X-Hub-Signature`, in every form integrations have seen.

The one integration that fixed its check against live deliveries sees `sha1=` followed by the
lower-case hex of HMAC-SHA256 keyed by the secret's text; others report hex or Base64, with or
without `sha256=`, keyed by the text or its Base64 decoding. So a prefix is only a label: the
digest's length says which algorithm made it (20 bytes SHA-1, 32 SHA-256), and only the
secrets of the delivery's own webhook type are tried, a few HMACs whatever the history.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Iterator, Sequence

from schemas.kiotviet_webhook import WEBHOOK_TYPES

_ACTION = re.compile(rb'"action"\s*:\s*"\s*([a-z]+\.[a-z]+)', re.IGNORECASE)
_HEX = re.compile(r"^[0-9a-fA-F]+$")
_ALGORITHMS = {20: ("sha1", hashlib.sha1), 32: ("sha256", hashlib.sha256)}


def delivery_types(raw: bytes) -> set[str]:
    """The webhook types a body's notifications name (`"Action": "stock.update.500123456"`)."""
    found = {match.group(1).decode("ascii").lower() for match in _ACTION.finditer(raw)}
    return found & set(WEBHOOK_TYPES)


def given_digest(header: str) -> bytes | None:
    """The digest a header carries, hex or Base64, any `sha1=`/`sha256=` label dropped."""
    value = header.strip()
    label, sep, rest = value.partition("=")
    if sep and label.strip().lower() in ("sha1", "sha256"):
        value = rest.strip()
    if _HEX.match(value) and len(value) % 2 == 0:
        return bytes.fromhex(value)
    padded = value.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(padded + "=" * (-len(padded) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def matching_variant(raw: bytes, header: str, secrets: Sequence[str]) -> str | None:
    """Which form of HMAC(raw) the header holds, e.g. `sha256/hex/text`; None when none does."""
    digest = given_digest(header)
    if digest is None or len(digest) not in _ALGORITHMS:
        return None
    name, algorithm = _ALGORITHMS[len(digest)]
    encoding = "hex" if _HEX.match(header.strip().partition("=")[2] or header.strip()) else "base64"
    for key_name, key in _keys(secrets):
        if hmac.compare_digest(hmac.new(key, raw, algorithm).digest(), digest):
            return f"{name}/{encoding}/{key_name}"
    return None


def _keys(secrets: Sequence[str]) -> Iterator[tuple[str, bytes]]:
    for secret in secrets:
        yield "text", secret.encode("utf-8")
        try:
            yield "base64-decoded", base64.b64decode(secret, validate=True)
        except (binascii.Error, ValueError):
            continue
