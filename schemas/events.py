"""The normalized event that travels through RQ as JSON."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from marshmallow import Schema, fields, post_load, validate

SOURCES = ("kiotviet", "abaha")


class Outcome(StrEnum):
    """What became of a change; counted per shop (`GET /admin/connections`, `/metrics`)."""

    APPLIED = "applied"  # written to the other side
    UNCHANGED = "unchanged"  # the source was read and the other side already holds that
    STALE = "stale"  # older than what was applied, or a repeat of it
    COALESCED = "coalesced"  # folded into a newer change of the same entity before it was applied
    DUPLICATE = "duplicate"  # a delivery already accepted, delivered again
    IGNORED = "ignored"  # not synced by design (another branch, a type recorded only, no shop)
    ECHO = "echo"  # the service's own write coming back
    RETRYING = "retrying"  # failed for a reason that passes; tried again on RQ's schedule
    FAILED = "failed"  # failed for good; in RQ's failed registry with the operator's message
    QUARANTINED = "quarantined"  # a rejected delivery, kept for operators
    TOTAL_MISMATCH = "total_mismatch"  # a KiotViet order whose total differs from Abaha's


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
        """The JSON-able form used as the job's only argument. Built field by field, not with
        `dataclasses.asdict`, which deep-copies every value (about 60 µs an event: a second of
        a 16,000-item delivery's answer, `docs/benchmarks.md`)."""
        return {"id": self.id, "source": self.source, "type": self.type, "shop_id": self.shop_id,
                "entity_id": self.entity_id, "version": self.version, "received_at": self.received_at,
                "data": plain_json(self.data)}  # fmt: skip

    @property
    def version_micros(self) -> int:
        """`version` as microseconds since the epoch, for ordering."""
        return to_micros(self.version)

    @property
    def version_second(self) -> int:
        """`version` to the second, in microseconds: how versions of both sides compare, since
        Abaha stamps whole seconds (within one second, the later-received change wins)."""
        return to_micros(self.version) // 1_000_000 * 1_000_000


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


def iso_from_ms(ms: int) -> str:
    """A Redis time in milliseconds as the service's timestamps."""
    return iso_utc(datetime.fromtimestamp(ms / 1000, UTC))


def to_micros(iso: str) -> int:
    """Microseconds since the epoch of an ISO 8601 timestamp with offset."""
    moment = datetime.fromisoformat(iso)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - EPOCH) // timedelta(microseconds=1)


_SCALARS = (str, int, float, bool, type(None))


def plain_json(value: Any) -> Any:
    """Tuples as lists and dataclasses as dicts (what `dataclasses.asdict` gives, without its
    deep copy of every value), so an event equals itself after a trip through JSON."""
    if type(value) in _SCALARS:  # most values: answered before the costlier checks
        return value
    if isinstance(value, dict):
        return {k: plain_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_json(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value
