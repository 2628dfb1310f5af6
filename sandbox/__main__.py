"""`python -m sandbox`: run the service locally, against the simulated peers when no real
ones are configured, and register a demo shop."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

from logs import configure_logging
from sandbox.kiotviet_data import demo_retailer
from sandbox.stack import ROOT, LocalStack
from wiring import local_secret

DEMO_SHOP = "demo-shop"


def main() -> int:
    state_dir = Path(os.environ.get("LOCAL_STATE_DIR", ROOT / ".local"))
    env = dict(os.environ)
    env.setdefault("LOG_FORMAT", "console")
    configure_logging(env["LOG_FORMAT"])
    env.setdefault("ADMIN_TOKEN", local_secret(str(state_dir), "admin_token"))
    env.setdefault("SECRET_KEY", local_secret(str(state_dir), "secret_key"))
    stack = LocalStack(state_dir, environ=env, web_port=int(env.get("PORT", 8000)),
                       sandbox_port=int(env.get("SANDBOX_PORT", 8100)))  # fmt: skip
    stopped = threading.Event()
    # explicit, also for SIGINT: a shell that starts us in the background makes us ignore it
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    try:
        stack.start()
        if stack.sandbox is not None:
            register_demo_shop(stack)
        print_banner(stack)
        stopped.wait()
    finally:
        stack.stop()
    return 0


def register_demo_shop(stack: LocalStack) -> None:
    assert stack.sandbox is not None
    retailer = stack.sandbox.kiotviet.add_retailer(demo_retailer(variants_and_units=True))
    abaha_token = "demo-abaha-token"
    stack.sandbox.abaha.add_shop(DEMO_SHOP, abaha_token)
    body = {"retailer": retailer.name, "client_id": retailer.client_id, "client_secret": retailer.client_secret,
            "branch_id": 11, "surcharge_code": "THK000001", "abaha_api_token": abaha_token}  # fmt: skip
    answer = stack.admin("PUT", f"/admin/connections/{DEMO_SHOP}", json=body)
    answer.raise_for_status()
    # what the shop would type into Abaha's webhook settings
    abaha = stack.sandbox.abaha.shops[DEMO_SHOP]
    abaha.webhook_url = answer.json()["abaha_webhook"]["url"]
    abaha.webhook_token = answer.json()["abaha_webhook"]["token"]


def print_banner(stack: LocalStack) -> None:
    sandbox = stack.sandbox.url if stack.sandbox else None
    lines = [
        "",
        f"Service:        {stack.url}   (webhooks at {stack.url}/webhooks/kiotviet/<shop_id>)",
        f"Admin token:    {stack.env['ADMIN_TOKEN']}",
        f"RQ dashboard:   {stack.url}/admin/rq/   (any user name, the admin token as password)",
        f"Connections:    curl -H 'Authorization: Bearer {stack.env['ADMIN_TOKEN']}' {stack.url}/admin/connections",
    ]
    if sandbox:
        lines += [
            f"Sandbox Abaha:  {sandbox}/_sandbox/abaha/shops/{DEMO_SHOP}",
            "Demo products:  3001, 3002; shirt 3101 in sizes M 3102 and L 3103; can 3201, case of 24 cans 3202",
            "",
            "Change a product's price in the simulated KiotViet; it sends the signed webhook:",
            f"  curl -X POST {sandbox}/_sandbox/kiotviet/demo/products/3001 -H 'Content-Type: application/json' "
            "-d '{\"basePrice\": 175000}'",
            f"then see the price on the simulated Abaha: curl {sandbox}/_sandbox/abaha/shops/{DEMO_SHOP}",
        ]
    lines += ["", "Ctrl-C stops everything.", ""]
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    sys.exit(main())
