"""A shop's health at a glance, for the console and the API: what was last written and when,
how long changes wait, what failed lately, what was rejected, the request budget, warnings."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from adapters.budget import BudgetPolicy, RequestBudget
from adapters.syncruns import SyncRuns
from wiring import Services


@dataclass(frozen=True)
class ShopHealth:
    shop_id: str
    retailer: str
    last_write_at_ms: int | None  # Redis ms of the last change written to the other side
    seconds_since_last_write: float | None
    pending: int  # entities waiting to be applied
    oldest_pending_seconds: float | None  # how long the oldest has waited: the lag now
    average_lag_seconds: float | None  # from a change's arrival to its write, over all written
    failures_last_hour: int
    failed_total: int
    quarantined: int
    budget_used_last_hour: int
    budget_hourly: int
    warnings: tuple[str, ...]
    last_sync: dict[str, Any] | None
    unresolved_orders: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def shop_health(services: Services, shop_id: str) -> ShopHealth | None:
    connection = services.connections.get(shop_id)
    if connection is None:
        return None
    seconds, micros = services.redis.time()  # type: ignore[misc]
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    lag = services.state.lag(shop_id)
    last = int(lag["last_at_ms"]) if "last_at_ms" in lag else None
    oldest = services.pending.oldest_pending_ms(shop_id)
    run = SyncRuns(services.redis).describe(shop_id)
    budget = RequestBudget(services.redis, BudgetPolicy(services.settings.kiotviet_hourly_budget))
    current = services.connections.warnings(shop_id)
    return ShopHealth(
        shop_id=shop_id,
        retailer=connection.retailer,
        last_write_at_ms=last,
        seconds_since_last_write=(now_ms - last) / 1000 if last else None,
        pending=services.pending.pending_count(shop_id),
        oldest_pending_seconds=(now_ms - oldest) / 1000 if oldest else None,
        average_lag_seconds=lag["sum"] / lag["count"] if lag.get("count") else None,
        failures_last_hour=services.state.failures_since(shop_id, now_ms - 3600 * 1000),
        failed_total=services.state.counts(shop_id).get("failed", 0),
        quarantined=services.quarantine.count(shop_id),
        budget_used_last_hour=budget.used_last_hour(connection.retailer),
        budget_hourly=budget.hourly,
        warnings=tuple(connection.warnings if current is None else current),
        last_sync={k: run.get(k) for k in ("id", "state", "queued_at", "done_at", "failed_at")} if run else None,
        unresolved_orders=len(services.links.unresolved_orders(shop_id)),
    )
