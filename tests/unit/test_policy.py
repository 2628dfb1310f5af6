"""The one failure policy of every job: permanent failures are not retried, `Retry-After` is
honoured, and a replay from any path (the dashboard included) starts with the whole schedule."""

from __future__ import annotations

import fakeredis
import pytest
from rq import Retry, SimpleWorker
from rq.exceptions import AbandonedJobError
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer
from structlog.testing import capture_logs

from adapters.errors import Busy, PermanentError, TransientError
from adapters.inbox import BUSY_SECONDS, BUSY_TRIES, DRAIN_SHOP, RETRY_INTERVALS, event_queue, job_retry
from admin.failed import requeue_failed
from workers.policy import BUSY_WAITS, failure_policy, wait_at_least

OUTCOMES: list[Exception | None] = []


def flaky() -> str:
    """A job that fails as the test says, in order."""
    error = OUTCOMES.pop(0)
    if error is not None:
        raise error
    return "done"


def run(redis: fakeredis.FakeRedis) -> None:
    worker = SimpleWorker([event_queue(redis)], connection=redis, serializer=JSONSerializer,
                          exception_handlers=[failure_policy])  # fmt: skip
    worker.work(burst=True)


def enqueue(redis: fakeredis.FakeRedis) -> Job:
    return event_queue(redis).enqueue(f"{__name__}.flaky", retry=job_retry())


def refetch(job: Job, redis: fakeredis.FakeRedis) -> Job:
    return Job.fetch(job.id, connection=redis, serializer=JSONSerializer)


@pytest.fixture(autouse=True)
def reset() -> None:
    OUTCOMES.clear()


def test_a_permanent_failure_is_not_retried(redis: fakeredis.FakeRedis) -> None:
    job = enqueue(redis)
    OUTCOMES.append(PermanentError("the surcharge code does not exist"))
    run(redis)
    assert refetch(job, redis).get_status() == JobStatus.FAILED


def test_a_transient_failure_is_retried_on_the_schedule(redis: fakeredis.FakeRedis) -> None:
    job = enqueue(redis)
    OUTCOMES.append(TransientError("Abaha answered 503"))
    run(redis)
    again = refetch(job, redis)
    assert again.get_status() == JobStatus.SCHEDULED
    assert again.retries_left == len(RETRY_INTERVALS) - 1


@pytest.mark.parametrize("replay", ["dashboard", "api"])
def test_a_replay_after_failing_for_good_gets_the_whole_schedule_again(redis: fakeredis.FakeRedis, replay: str) -> None:
    job = enqueue(redis)
    OUTCOMES.append(PermanentError("ordering is turned off"))
    run(redis)
    registry = event_queue(redis).failed_job_registry
    if replay == "dashboard":  # what rq-dashboard's Requeue does: RQ's own requeue, nothing more
        registry.requeue(job.id)
    else:
        assert requeue_failed(redis) == [job.id]
    OUTCOMES.append(TransientError("KiotViet answered 503"))  # one transient error after the fix
    run(redis)
    again = refetch(job, redis)
    assert again.get_status() == JobStatus.SCHEDULED  # retried, not straight back to failed
    assert again.retries_left == len(RETRY_INTERVALS) - 1


def test_the_next_retry_waits_at_least_what_the_server_asked() -> None:
    job = Job.create("bench.noop.noop", connection=fakeredis.FakeRedis(), retry=Retry(max=3, interval=[5, 30, 120]))
    wait_at_least(job, 90.2)
    assert job.get_retry_interval() == 91
    job.retries_left = 1  # the last retry is already longer
    wait_at_least(job, 60)
    assert job.get_retry_interval() == 120


def test_a_killed_workers_drain_is_not_reported_as_a_failed_change(redis: fakeredis.FakeRedis) -> None:
    drain = event_queue(redis).enqueue(DRAIN_SHOP, "shop-7")
    with capture_logs() as said:
        failure_policy(drain, AbandonedJobError, AbandonedJobError(), None)
    assert [line["event"] for line in said] == ["drain.interrupted"]  # its batch goes back to pending
    change = enqueue(redis)
    change.retries_left = 0
    with capture_logs() as said:
        failure_policy(change, AbandonedJobError, AbandonedJobError(), None)
    assert [line["event"] for line in said] == ["job.failed"]


def scheduled_in(job: Job, redis: fakeredis.FakeRedis) -> float:
    """Seconds from now until RQ runs the scheduled job again."""
    score = redis.zscore(event_queue(redis).scheduled_job_registry.key, job.id)
    seconds, micros = redis.time()
    return float(score) - (int(seconds) + int(micros) / 1e6)  # type: ignore[arg-type]


def test_a_change_whose_entity_is_busy_elsewhere_keeps_its_whole_schedule(redis: fakeredis.FakeRedis) -> None:
    """Two jobs of one entity due at one moment: the one that finds the entity held must not
    climb the schedule (30 s, 2 min, 10 min: seen in a chaos run, where it outlasted the run)."""
    job = enqueue(redis)
    for _ in range(5):
        OUTCOMES.append(Busy("product:3001 is being applied by another worker"))
        run(redis)
        again = refetch(job, redis)
        assert again.get_status() == JobStatus.SCHEDULED and again.retries_left == len(RETRY_INTERVALS)
        assert BUSY_SECONDS[0] - 1 <= scheduled_in(again, redis) <= BUSY_SECONDS[1]
        event_queue(redis).enqueue_job(again)  # its time has come
    OUTCOMES.append(TransientError("Abaha answered 503"))  # then a real failure: the schedule's first wait
    run(redis)
    again = refetch(job, redis)
    assert again.retries_left == len(RETRY_INTERVALS) - 1
    assert RETRY_INTERVALS[0] - 1 <= scheduled_in(again, redis) <= RETRY_INTERVALS[0]


def test_a_change_busy_for_too_long_climbs_the_schedule_after_all(redis: fakeredis.FakeRedis) -> None:
    job = enqueue(redis)
    job.meta[BUSY_WAITS] = BUSY_TRIES
    job.save_meta()  # type: ignore[no-untyped-call]
    OUTCOMES.append(Busy("product:3001 is being applied by another worker"))
    run(redis)
    assert refetch(job, redis).retries_left == len(RETRY_INTERVALS) - 1
