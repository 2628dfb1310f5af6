"""The service's wall clock for how old an intent is, in one place (tests move it forward)."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)
