"""Small helpers shared by the unit and integration tests."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

FIXTURES = Path(__file__).parent / "fixtures"
T = TypeVar("T")


def sample(name: str) -> dict[str, Any]:
    """A sample body from tests/fixtures, e.g. sample("kiotviet/product.update")."""
    body: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return body


def sign(body: bytes, secret: str) -> str:
    """KiotViet's signature as live deliveries carry it (and the sandbox sends it): `sha1=`
    followed by the hex HMAC-SHA256 keyed by the secret's text."""
    return "sha1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def connect_signed(services: Any, shop_id: str, branch_id: int, secret: str) -> None:
    """A connection whose every webhook type is signed with `secret`."""
    from adapters.connections import Connection, ConnectionSecrets, HookSecret
    from schemas.kiotviet_webhook import WEBHOOK_TYPES

    secrets = ConnectionSecrets("client-secret", "abaha-token", "abaha-webhook-token",
                                {kind: (HookSecret(secret),) for kind in WEBHOOK_TYPES})  # fmt: skip
    services.connections.save(Connection(shop_id=shop_id, retailer="demo", client_id="cid", branch_id=branch_id),
                              secrets)  # fmt: skip


def wait_for(probe: Callable[[], T | None], deadline: float = 20.0, interval: float = 0.05) -> T:
    """Poll `probe` until it returns something truthy; fail after `deadline` seconds."""
    end = time.monotonic() + deadline
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"condition not met within {deadline}s")
        time.sleep(interval)


def queue_scheduled(redis_client: Any) -> None:
    """Time passes: the jobs RQ scheduled for later are queued now, in the order they were
    scheduled (RQ scores a scheduled job by its second: jobs of one second would come in the
    order of their random ids)."""
    from rq.registry import ScheduledJobRegistry

    from adapters.inbox import QUEUES, event_queue

    for queue in [event_queue(redis_client, name) for name in QUEUES]:
        scheduled = ScheduledJobRegistry(queue=queue)  # type: ignore[no-untyped-call]
        due = []
        rows: list[tuple[bytes, float]] = redis_client.zrange(scheduled.key, 0, -1, withscores=True)
        for raw_id, second in rows:
            job_id = raw_id.decode()
            job = queue.fetch_job(job_id)
            scheduled.remove(job_id)
            if job is not None:
                due.append((second, job.ended_at or job.created_at, job))
        for _, _, job in sorted(due, key=lambda d: (d[0], d[1])):
            queue.enqueue_job(job)
