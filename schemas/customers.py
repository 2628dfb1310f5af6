"""A customer's content as both sides carry it: one phone form, one fingerprint.

The fingerprint covers exactly the fields both directions carry (Abaha's customer body has no
location or ward in KiotViet's form), the same set on both sides, so a write coming back as the
other side's event is recognised as our own echo.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any


def local_phone(phone: Any) -> str:
    """A Vietnamese number in one form: digits only, +84 / 84 written as the leading 0."""
    digits = re.sub(r"\D", "", str(phone or ""))
    return "0" + digits[2:] if digits.startswith("84") and len(digits) in (11, 12) else digits


def shared_fingerprint(name: Any, phone: Any, email: Any, address: Any, gender: Any, birth_date: Any) -> str:
    """The content both sides share, normalized so that the same customer hashes the same."""
    fields = [
        (name or "").strip(),
        local_phone(phone),
        (email or "").strip().lower(),
        (address or "").strip(),
        gender or "",
        str(birth_date or "")[:10],
    ]
    return hashlib.sha256(json.dumps(fields, ensure_ascii=False).encode()).hexdigest()[:32]


def gender_word(male: bool | None) -> str | None:
    return None if male is None else ("male" if male else "female")
