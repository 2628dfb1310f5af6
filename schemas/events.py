"""The normalized event that travels through RQ as JSON."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from marshmallow import Schema, fields, post_load, validate

SOURCES = ("kiotviet", "abaha")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Event:
    """One change from one source, ready to be applied."""

    id: str
    source: str
    type: str
    shop_id: str
    entity_id: str
    version: str
    received_at: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The JSON-able form used as the job's only argument."""
        return asdict(self)

    @property
    def version_micros(self) -> int:
        """`version` as microseconds since the epoch, for ordering."""
        return to_micros(self.version)


class EventSchema(Schema):
    """Validates a job's argument back into an Event."""

    id = fields.Str(required=True)
    source = fields.Str(required=True, validate=validate.OneOf(SOURCES))
    type = fields.Str(required=True)
    shop_id = fields.Str(required=True)
    entity_id = fields.Str(required=True)
    version = fields.Str(required=True)
    received_at = fields.Str(required=True)
    data = fields.Dict(load_default=dict)

    @post_load
    def make_event(self, values: dict[str, Any], **_: Any) -> Event:
        return Event(**values)


def event_id(*parts: object) -> str:
    """A deterministic id from the parts that identify one delivery of one change."""
    digest = hashlib.sha256("\x1f".join(str(part) for part in parts).encode("utf-8"))
    return digest.hexdigest()[:32]


def iso_utc(moment: datetime) -> str:
    """A timestamp in one comparable form: UTC, microseconds, explicit offset."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def to_micros(iso: str) -> int:
    """Microseconds since the epoch of an ISO 8601 timestamp with offset."""
    moment = datetime.fromisoformat(iso)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - EPOCH) // timedelta(microseconds=1)


def plain_json(value: Any) -> Any:
    """Tuples as lists, so an event equals itself after a trip through JSON."""
    if isinstance(value, dict):
        return {k: plain_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_json(v) for v in value]
    return value
