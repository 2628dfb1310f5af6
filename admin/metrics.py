"""Prometheus metrics read from Redis, so every web and worker process is counted."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from adapters.inbox import QUEUES, event_queue
from wiring import Services


class SyncCollector(Collector):
    """Counts per shop and outcome, quarantine reasons, queue depths."""

    def __init__(self, services: Services) -> None:
        self._services = services

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        events = CounterMetricFamily("sync_events", "Events by shop and outcome", labels=["shop_id", "outcome"])
        for connection in self._services.connections.all():
            for outcome, value in self._services.state.counts(connection.shop_id).items():
                events.add_metric([connection.shop_id, outcome], value)
        yield events
        reasons = CounterMetricFamily("sync_quarantined_deliveries", "Rejected KiotViet deliveries by reason",
                                      labels=["reason"])  # fmt: skip
        for reason, count in self._services.quarantine.reasons().items():
            reasons.add_metric([reason], count)
        yield reasons
        depth = GaugeMetricFamily(
            "sync_queue_jobs", "Jobs waiting, by queue and registry", labels=["queue", "registry"]
        )
        for name in QUEUES:
            queue = event_queue(self._services.redis, name)
            depth.add_metric([name, "queued"], queue.count)
            depth.add_metric([name, "failed"], queue.failed_job_registry.count)
            depth.add_metric([name, "scheduled"], queue.scheduled_job_registry.count)
        yield depth
