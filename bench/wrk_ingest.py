"""Benchmark: KiotViet webhook ingest under Debian's `wrk`, against `GET /healthz` on the same server.

The service runs as deployed locally (gunicorn, 2 processes x 4 threads, a private Redis), with
no worker, so acknowledgement alone is measured: each delivery is verified (HMAC), parsed,
normalized, claimed and made pending before its `200`. wrk's Lua script cycles through
pre-signed `stock.update` deliveries, each with its own delivery id (each wrk thread its own
slice, and each run a script of its own, so no id is sent twice). Each round runs the bare
endpoint, two floors below the webhook's own work on the same server (`bench/ingest_floor.py`:
a `POST` that reads the body and answers; one that also verifies the signature and keeps the
raw body with one `RPUSH`), then the webhook; ratios are taken per round, medians quoted. Each
run also reads the service's CPU per request (gunicorn's processes and Redis, from /proc):
their ratio says what the throughput ratio would be were the service's CPU its only limit, and
the other tenants' load sways it less. Debian's wrk has no `-R` (that is wrk2), so the
fixed-rate run paces each connection with the script's `delay()` hook to about the target
rate, and the rate reached is reported. Last, one delivery's path through the app is profiled
with cProfile (Flask's test client, the same Redis), grouped by package.

    .venv/bin/python -m bench.wrk_ingest [--seconds 10] [--rounds 3] [--rate 200]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import os
import pstats
import statistics
import subprocess
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.harness import BenchShop, CpuUse, connect, running_stack, write_result
from sandbox.stack import LocalStack

THREADS = 2
CONNECTIONS = 8
WEBHOOK = "/webhooks/kiotviet/"
# the same server's routes below the webhook's own work (`bench/ingest_floor.py`)
FLOORS = {"post_echo": "/floor/echo/", "verify_and_append": "/floor/append/"}
SCRIPT = """
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
function init(args)
  nthreads = tonumber(args[1])
  pause = tonumber(args[2])
  position = tonumber(tid) or 0
end
request = function()
  local d = deliveries[(position % #deliveries) + 1]
  position = position + nthreads
  return wrk.format("POST", path, {["X-Hub-Signature"] = d[2], ["Content-Type"] = "application/json"}, d[1])
end
function delay()
  return pause
end
"""
BARE = """
request = function() return wrk.format("GET", "/healthz") end
"""
REPORT = """
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('\\nRESULT {"requests": %d, "duration_us": %d, "socket_errors": %d, "status_errors": %d,'
    .. ' "p50_us": %d, "p99_us": %d, "max_us": %d}\\n', summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout, e.status, latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def deliveries_script(shop: BenchShop, count: int, folder: Path, run: int, route: str = WEBHOOK) -> Path:
    """A Lua file posting to `route` + the shop's id `count` signed deliveries, their ids distinct
    and this run's own (LuaJIT caps a script's constants at 65,536, so each run gets a script of
    its own rather than one script for all)."""
    lines = [f'path = "{route}{shop.shop_id}"', "deliveries = {"]
    for n in range(count):
        item = {"ProductId": shop.product_ids[n % len(shop.product_ids)], "ProductCode": "", "BranchId": 11,
                "OnHand": n % 50, "Reserved": 0}  # fmt: skip
        raw, signature = shop.signed("stock.update", [item], f"wrk-{run}-{n}")
        lines.append(f"{{[==[{raw.decode()}]==], [==[{signature}]==]}},")
    lines.append("}")
    path = folder / f"deliveries-{run}.lua"
    path.write_text("\n".join(lines) + SCRIPT + REPORT)
    return path


def wrk(stack: LocalStack, script: Path, seconds: float, connections: int, *args: str) -> dict[str, Any]:
    """One wrk run against the stack: its rate and latency, and the service's CPU per request
    (gunicorn's processes and Redis, from /proc), which the other tenants' load sways less."""
    url = stack.url
    cpu = CpuUse(stack).start()
    command = ["wrk", "-t", str(min(THREADS, connections)), "-c", str(connections), "-d", f"{round(seconds)}s",
               "--timeout", "10s", "-s", str(script), url, "--", *args]  # fmt: skip
    output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    line = next(x for x in output.splitlines() if x.startswith("RESULT "))
    found: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
    used = cpu.stop()
    per_request = {name: round(used[part] / max(found["requests"], 1) * 1000, 3)
                   for name, part in (("web_cpu_ms", "web (gunicorn)"), ("redis_cpu_ms", "redis"))}  # fmt: skip
    return {**per_request, "per_second": round(found["requests"] / (found["duration_us"] / 1e6), 1),
            "p50_ms": round(found["p50_us"] / 1000, 2), "p99_ms": round(found["p99_us"] / 1000, 2),
            "max_ms": round(found["max_us"] / 1000, 2), "requests": found["requests"],
            "errors": found["socket_errors"] + found["status_errors"]}  # fmt: skip


def ratios(bare: dict[str, Any], run: dict[str, Any]) -> dict[str, float]:
    """A run's rate as a share of the bare endpoint's, and the bare endpoint's CPU per request as
    a share of the run's (what the rate ratio would be were the service's CPU its only limit)."""
    return {"ratio": round(run["per_second"] / bare["per_second"], 3),
            "cpu_ratio": round(cpu_per_request(bare) / max(cpu_per_request(run), 1e-9), 3)}  # fmt: skip


def cpu_per_request(run: dict[str, Any]) -> float:
    """The service's CPU milliseconds per request of a run (web and Redis)."""
    return float(run["web_cpu_ms"] + run["redis_cpu_ms"])


def profile(stack: LocalStack, shop: BenchShop, requests: int) -> dict[str, Any]:
    """cProfile over `requests` one-item deliveries through the app, by step and by package."""
    bodies = []
    for n in range(requests + 20):
        item = {"ProductId": shop.product_ids[n % len(shop.product_ids)], "BranchId": 11, "OnHand": n % 50,
                "Reserved": 0}  # fmt: skip
        bodies.append(shop.signed("stock.update", [item], f"profile-{n}"))
    return profile_posts(stack, shop, bodies[:20], bodies[20:])


def profile_posts(stack: LocalStack, shop: BenchShop, warm: list[tuple[bytes, str]],
                  measured: list[tuple[bytes, str]]) -> dict[str, Any]:  # fmt: skip
    """cProfile over signed deliveries posted through the app (Flask's test client, the app
    built as gunicorn builds it, the stack's Redis), after `warm` ones unmeasured."""
    os.environ.update(stack.env)
    from app import create_app

    path = shop.url.removeprefix(stack.url)
    requests = len(measured)
    with contextlib.redirect_stdout(io.StringIO()):
        client = create_app().test_client()
        for raw, signature in warm:  # scripts loaded, connections made
            client.post(path, data=raw, headers={"X-Hub-Signature": signature})
        profiler = cProfile.Profile()
        profiler.enable()
        for raw, signature in measured:
            client.post(path, data=raw, headers={"X-Hub-Signature": signature})
        profiler.disable()
    stats = pstats.Stats(profiler)
    total = sum(row[2] for row in stats.stats.values())  # type: ignore[attr-defined]
    by_package: dict[str, float] = defaultdict(float)
    for (filename, _, _), row in stats.stats.items():  # type: ignore[attr-defined]
        by_package[package_of(filename)] += row[2]
    top = sorted(stats.stats.items(), key=lambda kv: kv[1][3], reverse=True)[:15]  # type: ignore[attr-defined]
    return {
        "requests": requests, "ms_per_request": round(total / requests * 1000, 2),
        "steps_of_the_view_ms_per_request": steps(stats, requests),
        "own_time_ms_per_request_by_package": {k: round(v / requests * 1000, 3) for k, v in
                                               sorted(by_package.items(), key=lambda kv: -kv[1])[:14]},
        "cumulative_ms_per_request_top": {f"{Path(f).name}:{line}:{name}": round(row[3] / requests * 1000, 3)
                                          for (f, line, name), row in top},
    }  # fmt: skip


def steps(stats: pstats.Stats, requests: int) -> dict[str, float]:
    """Where the view's time goes: each function `webhooks.kiotviet.ingest` calls, cumulative;
    and what the request costs around the view (Flask, werkzeug, the test client)."""
    table = stats.stats  # type: ignore[attr-defined]
    view = next(k for k in table if k[0].endswith("webhooks/kiotviet.py") and k[2] == "ingest")
    found = {f"{Path(k[0]).parent.name}/{Path(k[0]).name}:{k[2]}": row[4][view][3]
             for k, row in table.items() if view in row[4]}  # fmt: skip
    whole = sum(row[2] for row in table.values())
    around = whole - table[view][3]
    if around > 0:  # (cProfile's sums can exceed the whole for a single long request)
        found["(around the view: Flask, werkzeug, test client)"] = around
    return {k: round(v / requests * 1000, 3) for k, v in sorted(found.items(), key=lambda kv: -kv[1])}


def package_of(filename: str) -> str:
    """The package a profiled function belongs to: the service's own by folder, libraries by name."""
    path = Path(filename)
    if "site-packages" in path.parts:
        return path.parts[path.parts.index("site-packages") + 1].split(".")[0]
    root = Path(__file__).resolve().parent.parent
    if path.is_absolute() and root in path.parents:
        return "service:" + path.relative_to(root).parts[0]
    if filename.startswith("~") or filename.startswith("<"):
        return "builtins (C: hashing, Redis socket, json)"
    return "stdlib:" + path.stem


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=200, help="target deliveries a second of the paced run")
    parser.add_argument("--deliveries", type=int, default=30_000, help="signed deliveries made for each run")
    parser.add_argument("--profile-requests", type=int, default=500)
    args = parser.parse_args()
    rounds: list[dict[str, Any]] = []
    with running_stack(workers=0, app="bench.ingest_floor:app") as stack, tempfile.TemporaryDirectory() as folder:
        shop = connect(stack, "bench-wrk", products=60, sync=False)
        runs = 0

        def send(seconds: float, connections: int, pause: int, route: str = WEBHOOK) -> dict[str, Any]:
            """One wrk run of deliveries never sent before (so none is judged a duplicate)."""
            nonlocal runs
            runs += 1
            script = deliveries_script(shop, args.deliveries, Path(folder), runs, route)
            found = wrk(stack, script, seconds, connections, str(THREADS), str(pause))
            assert found["requests"] <= args.deliveries, "a run sent more deliveries than made: raise --deliveries"
            return found

        bare = Path(folder) / "bare.lua"
        bare.write_text(BARE + REPORT)
        for _ in range(args.rounds):
            healthz = wrk(stack, bare, args.seconds, CONNECTIONS)
            floors = {name: send(args.seconds, CONNECTIONS, 0, route) for name, route in FLOORS.items()}
            ingest = send(args.seconds, CONNECTIONS, 0)
            below = {name: {**run, **ratios(healthz, run)} for name, run in floors.items()}
            rounds.append({"bare_endpoint": healthz, "webhook_ingest": ingest, **ratios(healthz, ingest),
                           "floors": below})  # fmt: skip
            print(json.dumps(rounds[-1]), flush=True)
        # each connection waits `pause` ms before its next request: about `rate` a second in all,
        # the pause set from a short trial run's rate
        connections = 4
        pause = round(connections * 1000 / args.rate)
        for _ in range(2):
            trial = send(2, connections, pause)
            cycle = connections * 1000 / trial["per_second"]
            pause = max(0, round(pause - (cycle - connections * 1000 / args.rate)))
        paced = send(args.seconds * 2, connections, pause)
        paced_bare = wrk(stack, bare, args.seconds, connections)
        profiled = profile(stack, shop, args.profile_requests)
    write_result("wrk_ingest", {
        "wrk": "Debian wrk 4.1.0 (no -R)", "threads": THREADS, "connections": CONNECTIONS,
        "seconds_per_run": args.seconds, "rounds": rounds,
        "median_ratio_ingest_vs_bare": statistics.median(r["ratio"] for r in rounds),
        "median_cpu_ratio_bare_vs_ingest_per_request": statistics.median(r["cpu_ratio"] for r in rounds),
        "median_bare_per_second": statistics.median(r["bare_endpoint"]["per_second"] for r in rounds),
        "floors_median_ratio": {name: statistics.median(r["floors"][name]["ratio"] for r in rounds) for name in FLOORS},
        "floors_median_cpu_ratio": {name: statistics.median(r["floors"][name]["cpu_ratio"] for r in rounds)
                                    for name in FLOORS},
        "median_ingest_per_second": statistics.median(r["webhook_ingest"]["per_second"] for r in rounds),
        "paced": {"target_per_second": args.rate, "connections": connections, "pause_ms": pause,
                  "webhook_ingest": paced, "bare_endpoint_at_natural_rate_4_connections": paced_bare},
        "profile": profiled,
    })  # fmt: skip


if __name__ == "__main__":
    main()
