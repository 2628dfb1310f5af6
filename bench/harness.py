"""What the benchmarks share: the service started as the tests start it, shops connected to the
sandbox, signed deliveries, the arrival time of every write at the simulated Abaha, and the
figures written under `bench/results/`."""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import redis
import requests
from rq import Queue
from rq.serializers import JSONSerializer

import sandbox.abaha as abaha_api
from adapters import keys
from sandbox.abaha import AbahaShop
from sandbox.kiotviet_data import Retailer, demo_retailer, grow_catalogue, now_text, sign
from sandbox.stack import LocalStack

RESULTS = Path("bench/results")
BRANCH = 11
FIRST_PRODUCT = 100_000


def percentile(values: Sequence[float], pct: float) -> float:
    """The `pct` percentile (nearest rank) of `values`."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    """Median, p95, p99 and max of durations, in milliseconds."""
    if not seconds:
        return {"count": 0}
    return {"count": len(seconds), "p50_ms": round(statistics.median(seconds) * 1000, 1),
            "p95_ms": round(percentile(seconds, 95) * 1000, 1), "p99_ms": round(percentile(seconds, 99) * 1000, 1),
            "max_ms": round(max(seconds) * 1000, 1)}  # fmt: skip


def write_result(name: str, result: dict[str, Any]) -> Path:
    """Print the figures and keep them in bench/results/<name>.json."""
    result = {"machine": machine(), **result}
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return path


def machine() -> dict[str, Any]:
    load = os.getloadavg()
    return {"cpus": os.cpu_count(), "load_average_at_end": [round(x, 2) for x in load],
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}  # fmt: skip


class WriteClock:
    """Records when each product write (single or batch item) reaches the simulated Abaha, with
    the stock it carried, by wrapping the sandbox's item handlers."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.arrivals: dict[tuple[str, int], list[tuple[float, Any]]] = {}
        self._patch_one = abaha_api.patch_one
        self._put_one = abaha_api.put_one

    def __enter__(self) -> WriteClock:
        abaha_api.patch_one = self._wrap(self._patch_one)  # type: ignore[assignment]
        abaha_api.put_one = self._wrap(self._put_one)  # type: ignore[assignment]
        return self

    def __exit__(self, *_: object) -> None:
        abaha_api.patch_one = self._patch_one
        abaha_api.put_one = self._put_one

    def _wrap(self, handler: Callable[[AbahaShop, Any], dict[str, Any]]) -> Callable[[AbahaShop, Any], dict[str, Any]]:
        def recorded(shop: AbahaShop, item: Any) -> dict[str, Any]:
            answer = handler(shop, item)
            if answer.get("status") == "ok":
                shop_id = next((s for s, v in self.shops.items() if v is shop), "?")
                with self.lock:
                    self.arrivals.setdefault((shop_id, int(item["kv_id"])), []).append(
                        (time.perf_counter(), item.get("stock"))
                    )
            return answer

        return recorded

    shops: dict[str, AbahaShop] = {}

    def first_at_least(self, shop_id: str, product_id: int, stock: int, after: float) -> float | None:
        """When the first write of `product_id` with stock >= `stock` arrived after `after`."""
        with self.lock:
            found = [t for t, s in self.arrivals.get((shop_id, product_id), []) if t >= after and (s or 0) >= stock]
        return min(found) if found else None


@dataclass
class BenchShop:
    """A connected shop: its retailer in the simulated KiotViet, its Abaha side, its secrets."""

    stack: LocalStack
    shop_id: str
    retailer: Retailer
    abaha: AbahaShop
    secrets: dict[str, str]
    abaha_token: str
    product_ids: list[int] = field(default_factory=list)
    _sessions: threading.local = field(default_factory=threading.local)

    @property
    def url(self) -> str:
        return f"{self.stack.url}/webhooks/kiotviet/{self.shop_id}"

    def session(self) -> requests.Session:
        if not hasattr(self._sessions, "s"):
            self._sessions.s = requests.Session()
        session: requests.Session = self._sessions.s
        return session

    def set_stock(self, product_id: int, on_hand: int, reserved: int = 0) -> dict[str, Any]:
        """Change the stock in the simulated KiotViet (no webhook); the item KiotViet would send.
        The generated catalogue has no unit rows, so the stock's time is stamped here instead of
        by the sandbox's `share_stock`, which scans the whole catalogue for unit rows each time
        (under the sandbox's lock: the load would slow the peer the workers read from)."""
        with self.retailer.lock:
            product = self.retailer.products[product_id]
            rows = [i for i in product["inventories"] if i["branchId"] != BRANCH]
            product["inventories"] = [*rows, {"branchId": BRANCH, "onHand": on_hand, "reserved": reserved}]
            product["stockModifiedDate"] = now_text()
        return {"ProductId": product_id, "ProductCode": product["code"], "BranchId": BRANCH, "OnHand": on_hand,
                "Reserved": reserved}  # fmt: skip

    def body(self, kind: str, data: list[Any], delivery_id: str) -> bytes:
        envelope = {"Id": delivery_id, "Attempt": 1,
                    "Notifications": [{"Action": f"{kind}.{self.retailer.retailer_id}", "Data": data}]}  # fmt: skip
        return json.dumps(envelope, ensure_ascii=False).encode()

    def signed(self, kind: str, data: list[Any], delivery_id: str) -> tuple[bytes, str]:
        raw = self.body(kind, data, delivery_id)
        return raw, sign(raw, self.secrets[kind], "kiotviet-live")

    def post(self, kind: str, data: list[Any], delivery_id: str) -> int:
        raw, signature = self.signed(kind, data, delivery_id)
        headers = {"X-Hub-Signature": signature, "Content-Type": "application/json"}
        answer = self.session().post(self.url, data=raw, timeout=30, headers=headers)
        return answer.status_code

    def sellable(self, product_id: int) -> int:
        row = next(i for i in self.retailer.products[product_id]["inventories"] if i["branchId"] == BRANCH)
        return max(0, int(row["onHand"]) - int(row["reserved"]))

    def abaha_stock(self) -> dict[int, Any]:
        return {int(k): v.get("stock") for k, v in self.abaha.products.items()}


def service_env(**extra: str) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items()
               if k not in ("REDIS_URL", "KIOTVIET_API_URL", "ABAHA_API_URL", "PUBLIC_BASE_URL")}  # fmt: skip
    # the sandbox does not throttle; the budget's own behaviour is not what these runs measure
    environ.update(LOG_FORMAT="json", RECONCILE_INTERVAL="0", KIOTVIET_HOURLY_BUDGET="100000000")
    environ.update(extra)
    return environ


@contextmanager
def running_stack(workers: int = 0, app: str = "wsgi:app", **extra_env: str) -> Iterator[LocalStack]:
    """The whole service with a private Redis, gunicorn serving `app`; its logs in a temporary
    directory (read them with `drain_batches` before the block ends)."""
    kept = os.environ.get("BENCH_KEEP_LOGS")  # a folder to keep the service's logs in
    with tempfile.TemporaryDirectory(prefix="bench-") as state:
        stack = LocalStack(Path(state), environ=service_env(**extra_env), private_redis=True,
                           log_dir=Path(kept) if kept else Path(state) / "logs", app=app)  # fmt: skip
        stack.start(workers=workers)
        try:
            yield stack
        finally:
            stack.stop()


_retailer_ids = iter(range(700_000_000, 800_000_000))


def connect(stack: LocalStack, shop_id: str, products: int = 0, *, sync: bool = True,
            register_webhooks: bool = True) -> BenchShop:  # fmt: skip
    """A new retailer with `products` generated products, its Abaha shop, the connection saved
    (webhooks registered); with `sync`, a full sync of its products run by a worker started
    for it when none runs."""
    assert stack.sandbox is not None
    retailer = stack.sandbox.kiotviet.add_retailer(demo_retailer(shop_id.replace("-", ""), next(_retailer_ids)))
    if products:
        grow_catalogue(retailer, products=products, first_id=FIRST_PRODUCT)
    token = f"{shop_id}-abaha-token"
    abaha = stack.sandbox.abaha.add_shop(shop_id, token)
    WriteClock.shops[shop_id] = abaha
    body = {"retailer": retailer.name, "client_id": retailer.client_id, "client_secret": retailer.client_secret,
            "branch_id": BRANCH, "surcharge_code": "THK000001", "abaha_api_token": token,
            "register_webhooks": register_webhooks}  # fmt: skip
    answer = stack.admin("PUT", f"/admin/connections/{shop_id}", json=body)
    answer.raise_for_status()
    hook = answer.json()["abaha_webhook"]
    abaha.webhook_url, abaha.webhook_token = hook["url"], hook["token"]
    secrets = {h["type"]: h["secret"] for h in retailer.webhooks.values()}
    shop = BenchShop(stack, shop_id, retailer, abaha, secrets, hook["token"],
                     [FIRST_PRODUCT + n for n in range(products)])  # fmt: skip
    if sync:
        full_sync(shop)
    return shop


def full_sync(shop: BenchShop) -> None:
    stack = shop.stack
    helper = stack.start_worker() if not stack.workers else None
    try:
        run = stack.admin("POST", f"/admin/connections/{shop.shop_id}/sync", json={"entities": ["products"]}).json()
        deadline = time.monotonic() + 600
        while stack.admin("GET", f"/admin/connections/{shop.shop_id}/sync").json()["state"] not in ("done", "failed"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"full sync {run['id']} did not finish")
            time.sleep(0.1)  # the benchmark's own polling
        wait_idle(stack, [shop.shop_id])
    finally:
        if helper is not None:
            stack.stop_worker(helper)


def redis_of(stack: LocalStack) -> redis.Redis:
    return redis.Redis.from_url(stack.env["REDIS_URL"])


def pending_total(connection: redis.Redis, shop_ids: Sequence[str]) -> int:
    """Entities pending or leased for these shops."""
    total = 0
    for shop_id in shop_ids:
        total += int(connection.zcard(keys.shop_key(shop_id, keys.PENDING_ORDER)))  # type: ignore[arg-type]
        total += int(connection.hlen(keys.shop_key(shop_id, keys.PENDING_META)))  # type: ignore[arg-type]
    return total


def queues_busy(connection: redis.Redis) -> int:
    """Jobs queued or running, and changes scheduled for a retry (the planner, always scheduled
    on the `sync` queue, is not counted)."""
    events = Queue("events", connection=connection, serializer=JSONSerializer)
    sync = Queue("sync", connection=connection, serializer=JSONSerializer)
    busy: int = (events.count + events.started_job_registry.count + events.scheduled_job_registry.count
                 + sync.count + sync.started_job_registry.count)  # fmt: skip
    return busy


def first_job_taken(connection: redis.Redis, queued: int, deadline_seconds: float = 120) -> float:
    """When a worker first took a job off `events` (perf_counter): the queue shrank below
    `queued` or a job started. Worker start-up (imports, registration) is left out this way."""
    events = Queue("events", connection=connection, serializer=JSONSerializer)
    deadline = time.monotonic() + deadline_seconds
    while events.count >= queued and not events.started_job_registry.count:
        if time.monotonic() > deadline:
            raise RuntimeError("no worker took a job")
        time.sleep(0.005)  # the benchmark's own polling
    return time.perf_counter()


def wait_idle(stack: LocalStack, shop_ids: Sequence[str], deadline_seconds: float = 900, poll: float = 0.02) -> float:
    """Wait until nothing of these shops is pending and no job is queued, running or scheduled;
    answers when that was first seen (perf_counter)."""
    connection = redis_of(stack)
    deadline = time.monotonic() + deadline_seconds
    while pending_total(connection, shop_ids) or queues_busy(connection):
        if time.monotonic() > deadline:
            raise RuntimeError("the service did not drain in time")
        time.sleep(poll)  # the benchmark's own polling
    return time.perf_counter()


def empty_job_rate(stack: LocalStack, workers: int, jobs: int) -> dict[str, float]:
    """RQ's own rate with this worker configuration: `workers` workers of the service draining
    `jobs` empty jobs from the `events` queue (enqueued first)."""
    connection = redis_of(stack)
    queue = Queue("events", connection=connection, serializer=JSONSerializer)
    with connection.pipeline() as pipe:
        for _ in range(jobs):
            queue.enqueue("bench.noop.noop", result_ttl=0, pipeline=pipe)
        pipe.execute()
    running = [stack.start_worker() for _ in range(workers)]
    try:
        started = first_job_taken(connection, jobs)
        ended = wait_idle(stack, [])
    finally:
        for worker in running:
            stack.stop_worker(worker)
    wall = ended - started
    return {"jobs": jobs, "seconds": round(wall, 2), "per_second": round(jobs / wall, 1),
            "per_second_per_worker": round(jobs / wall / workers, 1)}  # fmt: skip


class CpuUse:
    """CPU seconds spent between `start` and `stop` by each part of the running service (a
    worker's forked work horses counted with it, once they ended), by this process (the
    simulated peers and the load), and by the whole machine (other tenants included)."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self._before: dict[str, float] = {}
        self.seconds: dict[str, float] = {}
        self._started = 0.0

    def _sample(self) -> dict[str, float]:
        groups: dict[str, list[int]] = {
            "workers (with their work horses)": [w.pid for w in self.stack.workers],
            "web (gunicorn)": [self.stack._web.pid] if self.stack._web else [],
            "redis": [self.stack._redis_process.pid] if self.stack._redis_process else [],
            "sandbox peers and load (this process)": [os.getpid()],
        }
        found: dict[str, float] = {}
        for name, pids in groups.items():
            total = 0.0
            for pid in pids:
                try:
                    process = psutil.Process(pid)
                    times = process.cpu_times()
                    total += times.user + times.system
                    if name != "sandbox peers and load (this process)":
                        total += times.children_user + times.children_system
                        for child in process.children(recursive=True):
                            child_times = child.cpu_times()
                            total += child_times.user + child_times.system
                except psutil.NoSuchProcess:
                    continue
            found[name] = total
        machine = psutil.cpu_times()
        found["whole machine"] = sum(machine) - machine.idle - getattr(machine, "iowait", 0.0)
        return found

    def start(self) -> CpuUse:
        self._before = self._sample()
        self._started = time.perf_counter()
        return self

    def stop(self) -> dict[str, float]:
        after = self._sample()
        wall = time.perf_counter() - self._started
        self.seconds = {k: round(after[k] - self._before.get(k, 0.0), 2) for k in after}
        self.seconds["wall"] = round(wall, 2)
        self.seconds["cpus_x_wall"] = round(wall * (os.cpu_count() or 1), 2)
        return self.seconds


def drain_batches(stack: LocalStack, shop_id: str, since: float = 0.0) -> dict[str, Any]:
    """The shop's batches as the workers logged them (`drain.done`), from `since` (epoch
    seconds): how many entities each took, and the time between one batch's end and the next's
    (a batch's whole cycle: queued, forked, taken, read, written, released)."""
    assert stack.log_dir is not None
    done: list[tuple[float, int]] = []
    for path in stack.log_dir.glob("worker*.log"):
        for line in path.read_text(errors="replace").splitlines():
            if '"drain.done"' not in line or shop_id not in line:
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            at = datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00")).timestamp()
            if record.get("shop_id") == shop_id and at >= since and record.get("entities"):
                done.append((at, int(record["entities"])))
    done.sort()
    cycles = [b[0] - a[0] for a, b in zip(done, done[1:], strict=False) if b[0] - a[0] < 30]
    sizes = [float(n) for _, n in done]
    return {"batches": len(done), "entities_per_batch": {"p50": statistics.median(sizes) if sizes else 0,
                                                          "p95": percentile(sizes, 95) if sizes else 0,
                                                          "max": max(sizes) if sizes else 0},
            "batch_cycle": summary_ms(cycles)}  # fmt: skip
