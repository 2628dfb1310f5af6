"""`python -m workers`: one RQ worker on all the service's queues, with the scheduler."""

from __future__ import annotations

import logging

import structlog
from rq.serializers import JSONSerializer
from rq.worker import DequeueStrategy

from adapters.inbox import QUEUES, event_queue
from config import Settings
from logs import configure_logging, log_format_for
from workers.context import process_services
from workers.job_context import SyncWorker
from workers.policy import failure_policy
from workers.reconcile import keep_ticking, wake_stalled_drains

log = structlog.get_logger(__name__)
JOB_MONITORING_SECONDS = 10
MAINTENANCE_SECONDS = 30
WORKER_TTL_SECONDS = 45  # an idle worker wakes every 30 s, so maintenance is not starved


class ServiceWorker(SyncWorker):
    """The service's RQ worker (job context in its logs), whose maintenance pass also wakes the
    drains of shops whose batch's worker died. The planner does this too, but it runs on RQ's
    scheduler: when the dead worker held the scheduler's lock, no tick runs until that lock
    lapses (61 s) and another worker's maintenance takes it (up to 30 s more). So a killed
    worker's batch is applied again within the lease and one maintenance interval of a live
    worker, whichever worker held the scheduler."""

    def run_maintenance_tasks(self) -> None:
        super().run_maintenance_tasks()  # type: ignore[no-untyped-call]
        try:
            wake_stalled_drains(process_services())
        except Exception:  # the planner's next tick tries again
            log.warning("worker.wake_failed", exc_info=True)


def main() -> None:
    settings = Settings.from_env()
    configure_logging(log_format_for(settings.log_format, explicit=settings.log_format_chosen, local=settings.is_local))
    # built once here, so every forked work horse inherits them instead of building its own
    services = process_services()
    keep_ticking(services)
    queues = [event_queue(services.redis, name) for name in QUEUES]
    worker = ServiceWorker(
        queues,
        connection=services.redis,
        serializer=JSONSerializer,
        # a killed worker's job is found abandoned ~70 s after its last heartbeat (RQ adds 60 s to
        # the monitoring interval) and retried by the next maintenance pass of any worker
        job_monitoring_interval=JOB_MONITORING_SECONDS,
        maintenance_interval=MAINTENANCE_SECONDS,
        worker_ttl=WORKER_TTL_SECONDS,
        exception_handlers=[failure_policy],
    )
    # queues take turns: a long full sync and a storm of changes both move, neither starves
    worker.work(
        with_scheduler=True,
        logging_level=logging.getLevelName(logging.INFO),
        dequeue_strategy=DequeueStrategy.ROUND_ROBIN,
    )


if __name__ == "__main__":
    main()
