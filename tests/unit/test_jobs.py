from __future__ import annotations

import fakeredis
from rq import Retry
from rq.job import Job

from workers.jobs import wait_at_least


def test_the_next_retry_waits_at_least_what_the_server_asked() -> None:
    job = Job.create("bench.noop.noop", connection=fakeredis.FakeRedis(), retry=Retry(max=3, interval=[5, 30, 120]))
    wait_at_least(job, 90.2)
    assert job.get_retry_interval() == 91
    job.retries_left = 1  # the last retry is already longer
    wait_at_least(job, 60)
    assert job.get_retry_interval() == 120
