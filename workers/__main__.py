"""`python -m workers`: one RQ worker on all the service's queues, with the scheduler.

RQ's worker survives Redis going away only while it waits for a job; one that loses Redis while a
job runs (or between jobs) quits. So the worker is supervised here: when it ends without being
asked to stop, the process waits for its work horse, waits for Redis, and starts a fresh worker.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from contextlib import suppress
from types import FrameType

import redis
import structlog
from rq import Worker
from rq.serializers import JSONSerializer
from rq.worker import DequeueStrategy

from adapters.inbox import QUEUES, event_queue
from config import Settings
from logs import configure_logging, log_format_for
from wiring import Services
from workers.context import process_services
from workers.drain import LEASE_MS
from workers.job_context import SyncWorker
from workers.policy import failure_policy
from workers.reconcile import keep_ticking, wake_stalled_drains

log = structlog.get_logger(__name__)
JOB_MONITORING_SECONDS = 10
MAINTENANCE_SECONDS = 30
WORKER_TTL_SECONDS = 45  # an idle worker wakes every 30 s, so maintenance is not starved
REDIS_WAIT_CAP_SECONDS = 2.0  # how long at most between two looks at a Redis that is away


class ServiceWorker(SyncWorker):
    """The service's RQ worker (job context in its logs), whose maintenance pass also restarts the
    planner if a fault ended it, and wakes the drains of shops whose batch's worker died. The
    planner does this too, but it runs on RQ's scheduler: when the dead worker held the
    scheduler's lock, no tick runs until that lock lapses (61 s) and another worker's maintenance
    takes it (up to 30 s more). So a killed worker's batch is applied again within the lease and
    one maintenance interval of a live worker, whichever worker held the scheduler."""

    def run_maintenance_tasks(self) -> None:
        super().run_maintenance_tasks()  # type: ignore[no-untyped-call]
        keep_ticking(process_services())
        try:
            wake_stalled_drains(process_services())
        except Exception:  # the planner's next tick tries again
            log.warning("worker.wake_failed", exc_info=True)


def main() -> None:
    settings = Settings.from_env()
    configure_logging(log_format_for(settings.log_format, explicit=settings.log_format_chosen, local=settings.is_local))
    # built once here, so every forked work horse inherits them instead of building its own
    services = process_services()
    while True:
        worker: Worker | None = None
        try:
            worker = build_worker(services)  # RQ's worker reads Redis as it is built
            keep_ticking(services)
            work(worker)
        except redis.exceptions.RedisError as exc:
            log.warning("worker.redis_lost", worker=worker.name if worker else None, error=type(exc).__name__)
        if (worker is not None and stop_requested(worker)) or not recover(worker, services):
            return
        log.info("worker.restarting", previous=worker.name if worker else None)


def build_worker(services: Services) -> Worker:
    queues = [event_queue(services.redis, name) for name in QUEUES]
    return ServiceWorker(
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


def work(worker: Worker) -> None:
    # queues take turns: a long full sync and a storm of changes both move, neither starves
    worker.work(
        with_scheduler=True,
        logging_level=logging.getLevelName(logging.INFO),
        dequeue_strategy=DequeueStrategy.ROUND_ROBIN,
    )


def stop_requested(worker: Worker) -> bool:
    """Whether the worker ended because it was told to (SIGTERM, SIGINT, a shutdown command)."""
    return bool(worker._stop_requested or worker._shutdown_requested_date)


def recover(worker: Worker | None, services: Services) -> bool:
    """After a worker ended on its own (or could not be built): let its work horse finish, and
    wait until Redis answers. False when the process was asked to stop meanwhile (a second
    signal kills the horse)."""
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stopping.is_set() and worker is not None and worker.horse_pid:
            with suppress(OSError):
                os.killpg(os.getpgid(worker.horse_pid), signal.SIGKILL)
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if worker is not None:
        forget(worker)
    if worker is not None and worker.horse_pid:
        with suppress(ChildProcessError):
            os.waitpid(worker.horse_pid, 0)
    delay = 0.1
    while not stopping.is_set():
        try:
            resume(worker, services)
            return True
        except redis.exceptions.RedisError:
            stopping.wait(delay)
            delay = min(delay * 2, REDIS_WAIT_CAP_SECONDS)
    return False


def resume(worker: Worker | None, services: Services) -> None:
    """Redis answers again: free the ended worker's scheduler locks (else delayed jobs wait a
    minute for them to lapse), and queue drains for shops whose changes wait, now and once the
    interrupted batch's lease has lapsed (a drain queued before the fault may be lost with it)."""
    if worker is not None and worker.scheduler is not None:
        worker.scheduler.release_locks()  # type: ignore[no-untyped-call]
    seconds, micros = services.redis.time()  # type: ignore[misc]
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    for shop_id in services.pending.waiting_shops(now_ms):
        services.inbox.enqueue_drain(shop_id)
    for shop_id in services.pending.expired_leases(now_ms + LEASE_MS):
        services.inbox.enqueue_drain(shop_id, LEASE_MS / 1000 + 1)


def forget(worker: Worker) -> None:
    """Stop what the ended worker left running: its command listener (its scheduler stopped with it)."""
    if worker.pubsub_thread is not None:
        worker.pubsub_thread.stop()
        worker.pubsub_thread.join(timeout=1)
    if worker.pubsub is not None:
        with suppress(redis.exceptions.RedisError):
            worker.pubsub.close()


if __name__ == "__main__":
    main()
