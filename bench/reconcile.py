"""Benchmark: reconciliation of many connections, worker time per pull.

N shops are connected (the demo catalogue each, webhooks not registered). Two rounds: one
reconciliation job per shop is queued on the `sync` queue and W workers run them (the first
round finds every row new and makes it pending; the second, seconds later, re-reads the last
two minutes' rows, which must all be found applied already: no wasted work). Reported per
round: the worker time of each pull (RQ's own start and end of the job), the wall time of the
round, the changes each pull found new, and the writes Abaha received.

    .venv/bin/python -m bench.reconcile [--connections 500] [--workers 2]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from bench.harness import BenchShop, connect, redis_of, running_stack, summary_ms, wait_idle, write_result
from sandbox.stack import LocalStack

RECONCILE_SHOP = "workers.reconcile.reconcile_shop"


def connect_many(stack: LocalStack, count: int) -> list[BenchShop]:
    assert stack.sandbox is not None
    shops = []
    for n in range(count):
        shops.append(connect(stack, f"bench-rec-{n}", sync=False, register_webhooks=False))
    return shops


def round_of_pulls(stack: LocalStack, shops: list[BenchShop], workers: int) -> dict[str, Any]:
    connection = redis_of(stack)
    queue = Queue("sync", connection=connection, serializer=JSONSerializer)
    writes_before = sum(len(s.abaha.writes) for s in shops)
    with connection.pipeline() as pipe:
        jobs = [queue.enqueue(RECONCILE_SHOP, s.shop_id, result_ttl=3600, job_timeout=1800, pipeline=pipe)
                for s in shops]  # fmt: skip
        pipe.execute()
    started = time.perf_counter()
    running = [stack.start_worker() for _ in range(workers)]
    try:
        ended = wait_idle(stack, [s.shop_id for s in shops], poll=0.2)
    finally:
        for worker in running:
            stack.stop_worker(worker)
    seconds: list[float] = []
    new, outcomes = 0, dict[str, int]()
    for job in Job.fetch_many([j.id for j in jobs], connection=connection, serializer=JSONSerializer):
        assert job is not None and job.started_at and job.ended_at, job
        seconds.append((job.ended_at - job.started_at).total_seconds())
        result = job.return_value() or {}
        outcome = str(result.get("outcome"))
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        new += sum(v for k, v in result.items() if isinstance(v, int) and k != "warnings")
    return {"pulls": len(jobs), "outcomes": outcomes, "worker_seconds_per_pull": summary_ms(seconds),
            "round_wall_seconds_with_worker_start": round(ended - started, 1),
            "changes_found_new": new,
            "abaha_writes": sum(len(s.abaha.writes) for s in shops) - writes_before}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with running_stack(workers=0) as stack:
        started = time.perf_counter()
        shops = connect_many(stack, args.connections)
        connect_seconds = time.perf_counter() - started
        first = round_of_pulls(stack, shops, args.workers)
        second = round_of_pulls(stack, shops, args.workers)
    write_result("reconcile", {"connections": args.connections, "workers": args.workers,
                               "connect_seconds": round(connect_seconds, 1), "first_round": first,
                               "second_round": second})  # fmt: skip


if __name__ == "__main__":
    main()
