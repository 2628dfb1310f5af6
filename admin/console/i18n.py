"""The console's languages and the filters that show times and durations in the chosen one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import request, session
from flask_babel import format_datetime, format_timedelta

LANGUAGES = {"vi": "Tiếng Việt", "en": "English"}
DEFAULT_LANGUAGE = "vi"


def chosen_language() -> str:
    """The language picked in the console: Vietnamese unless English was chosen."""
    chosen = session.get("lang") if request.path.startswith("/admin") else None
    return chosen if chosen in LANGUAGES else DEFAULT_LANGUAGE


def when(value: datetime | str | None) -> str:
    """A moment in the operator's time zone (Vietnam's), or a dash."""
    moment = parse_moment(value)
    return str(format_datetime(moment, "short")) if moment else "—"


def ago(seconds: float | None) -> str:
    """How long ago, in words ("5 phút trước")."""
    if seconds is None:
        return "—"
    return str(format_timedelta(timedelta(seconds=-max(seconds, 0.0)), add_direction=True, threshold=1.0))


def duration(seconds: float | None) -> str:
    """A length of time in words ("3 giây")."""
    return "—" if seconds is None else str(format_timedelta(timedelta(seconds=seconds), threshold=1.0))


def parse_moment(value: datetime | str | None) -> datetime | None:
    """A datetime from an ISO text (UTC when it names no zone); None stays None."""
    if value is None or isinstance(value, datetime):
        return value
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
