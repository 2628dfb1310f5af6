"""Vietnamese phone numbers in one form, so `0912…`, `84912…` and `+84 912…` match."""

from __future__ import annotations

import re


def phone_key(text: str | None) -> str:
    """The number's digits in its national `0…` form."""
    digits = re.sub(r"\D", "", text or "")
    return "0" + digits[2:] if digits.startswith("84") and len(digits) > 9 else digits


def same_phone(one: str | None, other: str | None) -> bool:
    return bool(phone_key(one)) and phone_key(one) == phone_key(other)
