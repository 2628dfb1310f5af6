"""`python -m workers`: one RQ worker on all the service's queues, with the scheduler."""

from __future__ import annotations

import logging

from rq import Worker
from rq.serializers import JSONSerializer

from adapters.inbox import QUEUES, event_queue
from config import Settings
from logs import configure_logging
from wiring import build_services


def main() -> None:
    settings = Settings.from_env()
    configure_logging(settings.log_format)
    services = build_services(settings)
    queues = [event_queue(services.redis, name) for name in QUEUES]
    worker = Worker(queues, connection=services.redis, serializer=JSONSerializer)
    worker.work(with_scheduler=True, logging_level=logging.getLevelName(logging.INFO))


if __name__ == "__main__":
    main()
