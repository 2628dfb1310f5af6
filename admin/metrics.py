"""Prometheus metrics read from Redis at scrape time, so every web and worker process, on any
host, is counted: the processes only increment counters in Redis (`adapters/state.py`, the
ingest script), and this collector turns them into metric families. Shop labels come from the
registered connections only, so a stranger posting to made-up shop ids adds no series."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from rq import Queue

from adapters.budget import BudgetPolicy, RequestBudget
from adapters.connections import Connection
from adapters.inbox import QUEUES, event_queue, live_workers
from adapters.state import DELIVERY_DUPLICATE, DELIVERY_RECEIVED, DELIVERY_REJECTED, LAG_BUCKETS, RETRIED, ShopReadings
from wiring import Services
from workers.hooks import held_elsewhere

DELIVERY_FAMILIES = {
    DELIVERY_RECEIVED: "Deliveries that reached a webhook endpoint, by source and type",
    DELIVERY_REJECTED: "Deliveries not accepted (quarantined, refused, unknown shop), by source and type",
    DELIVERY_DUPLICATE: "Deliveries whose every event had been accepted before, by source and type",
}


class SyncCollector(Collector):
    """Deliveries, what became of each change, lag, retries, queues, budget, workers."""

    def __init__(self, services: Services) -> None:
        self._services = services

    def collect(self) -> Iterator[Metric]:
        services = self._services
        connections = services.connections.all()
        shops = [c.shop_id for c in connections]
        readings = services.state.readings(shops)  # per-shop reads are batched: one round trip each
        seconds, micros = services.redis.time()  # type: ignore[misc]
        now = int(seconds) + int(micros) / 1_000_000
        yield from self.deliveries()
        yield from self.outcomes(readings)
        yield self.lag(readings)
        yield from self.shops(connections, readings, now)
        yield from self.queues(now)
        workers = GaugeMetricFamily("sync_workers_alive", "RQ workers whose heartbeat is current")
        workers.add_metric([], len(live_workers(services.redis)))
        yield workers

    def deliveries(self) -> Iterator[Metric]:
        counts = self._services.state.delivery_counts()
        for outcome, documentation in DELIVERY_FAMILIES.items():
            family = CounterMetricFamily(f"sync_deliveries_{outcome}", documentation, labels=["source", "type"])
            for (source, kind, counted), value in sorted(counts.items()):
                if counted == outcome:
                    family.add_metric([source, kind], value)
            yield family
        reasons = CounterMetricFamily("sync_quarantined_deliveries", "Rejected KiotViet deliveries by reason",
                                      labels=["reason"])  # fmt: skip
        for reason, count in self._services.quarantine.reasons().items():
            reasons.add_metric([reason], count)
        yield reasons

    def outcomes(self, readings: dict[str, ShopReadings]) -> Iterator[Metric]:
        events = CounterMetricFamily("sync_events", "Events by shop and outcome", labels=["shop_id", "outcome"])
        changes = CounterMetricFamily("sync_changes", "What became of changes, by shop, kind of entity and outcome",
                                      labels=["shop_id", "kind", "outcome"])  # fmt: skip
        retries = CounterMetricFamily("sync_retries", "Changes scheduled to be tried again, by shop and kind",
                                      labels=["shop_id", "kind"])  # fmt: skip
        for shop, reading in readings.items():
            for outcome, value in reading.counts.items():
                events.add_metric([shop, outcome], value)
            for (kind, outcome), value in sorted(reading.kind_counts.items()):
                if outcome == RETRIED:
                    retries.add_metric([shop, kind], value)
                else:
                    changes.add_metric([shop, kind, outcome], value)
        yield from (events, changes, retries)

    def lag(self, readings: dict[str, ShopReadings]) -> Metric:
        lag = HistogramMetricFamily("sync_change_lag_seconds", "Seconds from a change's arrival to its write",
                                    labels=["shop_id"])  # fmt: skip
        for shop, reading in readings.items():
            buckets, running = [], 0.0
            for bound in LAG_BUCKETS:
                running += reading.lag.get(f"le:{bound}", 0)
                buckets.append((str(float(bound)), running))
            buckets.append(("+Inf", reading.lag.get("count", 0)))
            lag.add_metric([shop], buckets, sum_value=reading.lag.get("sum", 0))
        return lag

    def shops(self, connections: list[Connection], readings: dict[str, ShopReadings], now: float) -> Iterator[Metric]:
        services = self._services
        gauges = {
            "pending": GaugeMetricFamily("sync_pending_entities", "Entities with a change waiting", labels=["shop_id"]),
            "oldest": GaugeMetricFamily("sync_pending_oldest_age_seconds",
                                        "How long the oldest waiting change has waited", labels=["shop_id"]),
            "last": GaugeMetricFamily("sync_last_write_timestamp_seconds",
                                      "When a change was last written to the other side", labels=["shop_id"]),
            "budget": GaugeMetricFamily("sync_kiotviet_budget_used",
                                        "KiotViet GET requests granted in the last hour", labels=["shop_id"]),
            "kept": GaugeMetricFamily("sync_quarantine_kept", "Rejected deliveries kept for operators",
                                      labels=["shop_id"]),
            "held": GaugeMetricFamily("sync_webhooks_held_elsewhere",
                                      "Webhook types another integration holds", labels=["shop_id"]),
            "warnings": GaugeMetricFamily("sync_connection_warnings", "Current warnings of the connection",
                                          labels=["shop_id"]),
        }  # fmt: skip
        shops = [c.shop_id for c in connections]
        budget = RequestBudget(services.redis, BudgetPolicy(services.settings.kiotviet_hourly_budget))
        used = budget.used_last_hour_of(sorted({c.retailer for c in connections}))
        waiting, kept = services.pending.waiting(shops), services.quarantine.counts(shops)
        current = services.connections.warnings_of(shops)
        for connection in connections:
            shop = connection.shop_id
            count, oldest = waiting[shop]
            warnings = list(connection.warnings) if current[shop] is None else current[shop] or []
            gauges["pending"].add_metric([shop], count)
            gauges["oldest"].add_metric([shop], max(0.0, now - oldest / 1000) if oldest else 0.0)
            if readings[shop].lag.get("last_at_ms"):
                gauges["last"].add_metric([shop], readings[shop].lag["last_at_ms"] / 1000)
            gauges["budget"].add_metric([shop], used[connection.retailer])
            gauges["kept"].add_metric([shop], kept[shop])
            gauges["held"].add_metric([shop], len(held_elsewhere(warnings)))
            gauges["warnings"].add_metric([shop], len(warnings))
        yield from gauges.values()
        hourly = GaugeMetricFamily("sync_kiotviet_budget_hourly", "KiotViet GET requests a shop may make an hour")
        hourly.add_metric([], budget.hourly)
        yield hourly

    def queues(self, now: float) -> Iterator[Metric]:
        depth = GaugeMetricFamily("sync_queue_jobs", "Jobs by queue and registry", labels=["queue", "registry"])
        age = GaugeMetricFamily("sync_queue_oldest_job_age_seconds", "How long the queue's first job has waited",
                                labels=["queue"])  # fmt: skip
        for name in QUEUES:
            queue = event_queue(self._services.redis, name)
            depth.add_metric([name, "queued"], queue.count)
            depth.add_metric([name, "failed"], queue.failed_job_registry.count)
            depth.add_metric([name, "scheduled"], queue.scheduled_job_registry.count)
            age.add_metric([name], oldest_job_age(queue, now))
        yield from (depth, age)


def oldest_job_age(queue: Queue, now: float) -> float:
    """Seconds the first job of the queue has been waiting (0 when it is empty)."""
    ids = queue.get_job_ids(0, 1)
    job = queue.fetch_job(ids[0]) if ids else None
    if job is None or job.enqueued_at is None:
        return 0.0
    enqueued = job.enqueued_at if job.enqueued_at.tzinfo else job.enqueued_at.replace(tzinfo=UTC)
    return max(0.0, now - enqueued.timestamp())
