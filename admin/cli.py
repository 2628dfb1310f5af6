"""`flask --app wsgi connections ...`: the admin API's operations for a terminal."""

from __future__ import annotations

import io
import json
import time
from collections import Counter
from datetime import datetime
from typing import Any

import click
from flask import Flask
from flask.cli import AppGroup, with_appcontext

from adapters.syncruns import ENTITIES, SyncRuns
from admin.connections import ConnectionAdmin, ConnectionInvalid
from admin.failed import requeue_failed
from admin.sync import start_sync_run
from wiring import current_services

SHOWN_ERRORS = 10


def register_commands(app: Flask) -> None:
    app.cli.add_command(connections)
    app.cli.add_command(requeue)
    app.cli.add_command(sync)


@click.group(cls=AppGroup)
def connections() -> None:
    """Register, show and delete shops' connections."""


@connections.command("save")
@click.argument("shop_id")
@click.option("--retailer", required=True, help="the shop name of <retailer>.kiotviet.vn")
@click.option("--client-id", required=True)
@click.option("--client-secret", required=True, prompt=True, hide_input=True, help="KiotViet's mã bảo mật")
@click.option("--branch-id", required=True, type=int)
@click.option("--surcharge-code", default=None)
@click.option("--abaha-api-token", required=True, prompt=True, hide_input=True)
@click.option("--register-webhooks/--no-register-webhooks", default=True)
@click.option("--rotate-abaha-token", is_flag=True, default=False)
@click.option(
    "--take-over-webhooks",
    is_flag=True,
    default=False,
    help="take webhook types another integration holds (it stops receiving them)",
)
def save(shop_id: str, **options: Any) -> None:
    """Validate against KiotViet, store the connection, register the webhooks."""
    try:
        _print(ConnectionAdmin(current_services()).save(shop_id, options))
    except ConnectionInvalid as exc:
        raise click.ClickException("\n".join(exc.errors)) from exc


@connections.command("list")
def list_() -> None:
    """Every connection with its state."""
    _print(ConnectionAdmin(current_services()).list())


@connections.command("show")
@click.argument("shop_id")
def show(shop_id: str) -> None:
    """One connection with its state."""
    shown = ConnectionAdmin(current_services()).show(shop_id)
    if shown is None:
        raise click.ClickException(f"no connection for shop {shop_id}")
    _print(shown)


@connections.command("delete")
@click.argument("shop_id")
def delete(shop_id: str) -> None:
    """Unregister the shop's webhooks and forget its secrets."""
    deleted = ConnectionAdmin(current_services()).delete(shop_id)
    if deleted is None:
        raise click.ClickException(f"no connection for shop {shop_id}")
    _print(deleted)


@click.command("requeue-failed")
@with_appcontext
@click.option("--shop-id", default=None)
@click.option("--type", "kind", default=None, help="an event type, e.g. product.update")
def requeue(shop_id: str | None, kind: str | None) -> None:
    """Replay failed jobs."""
    ids = requeue_failed(current_services().redis, shop_id, kind)
    click.echo(f"requeued {len(ids)} job(s)")


@click.command("sync")
@with_appcontext
@click.argument("shop_id")
@click.option("--entity", "entities", multiple=True, type=click.Choice(ENTITIES), help="repeat to choose several")
@click.option("--wait/--no-wait", default=True, help="follow the run with a progress bar")
@click.option("--json", "as_json", is_flag=True, default=False, help="print the run as JSON, for scripts")
def sync(shop_id: str, entities: tuple[str, ...], wait: bool, as_json: bool) -> None:
    """Start a full sync ("Đồng bộ") of a shop, KiotViet → Abaha."""
    services = current_services()
    try:
        run_id = start_sync_run(services, shop_id, {"entities": list(entities)} if entities else {})
    except ConnectionInvalid as exc:
        raise click.ClickException("\n".join(exc.errors)) from exc
    if as_json and not wait:
        _print({"id": run_id, "state": "queued"})
        return
    if not as_json:
        click.echo(f"Full sync {run_id} queued.")
    if not wait:
        return
    run = follow(SyncRuns(services.redis), shop_id, run_id, show_progress=not as_json)
    if as_json:
        _print(run)
    else:
        click.echo(summary(run))
    if run.get("state") == "failed":
        raise click.ClickException("the full sync failed" + ("" if as_json else "; see its errors above"))


def follow(runs: SyncRuns, shop_id: str, run_id: str, *, show_progress: bool = True) -> dict[str, Any]:
    """Wait for the run to be done or failed, with a progress bar over all its entities."""
    with click.progressbar(length=1, label="syncing", show_percent=True, show_pos=True,
                           file=None if show_progress else io.StringIO()) as bar:  # fmt: skip
        while True:
            run = runs.describe(shop_id, run_id) or {}
            counts = run.get("entities", {}).values()
            bar.length = max(1, sum(c["total"] or 0 for c in counts))
            bar.update(sum(c["done"] for c in counts) - bar.pos)
            if run.get("state") in ("done", "failed"):
                return run
            time.sleep(0.5)  # polling the run's progress for the operator's screen


def summary(run: dict[str, Any]) -> str:
    """The run for a person: its outcome, per entity done / total and errors, then the errors."""
    errors: list[str] = run.get("errors", [])
    by_entity = Counter(error.split(" ", 1)[0].split(":", 1)[0] for error in errors)
    entities: dict[str, dict[str, Any]] = run.get("entities", {})
    width = max((len(name) for name in entities), default=0)
    took = seconds_between(run.get("queued_at"), run.get("done_at") or run.get("failed_at"))
    lines = [f"Full sync {run.get('id')} {run.get('state')}" + (f" in {took:.1f} s" if took is not None else "")]
    for name, counts in entities.items():
        total = "?" if counts.get("total") is None else counts["total"]
        failed = f", {by_entity[name]} error(s)" if by_entity.get(name) else ""
        lines.append(f"  {name:<{width}}  {counts.get('done', 0)} / {total}{failed}")
    if not errors:
        lines.append("No errors.")
        return "\n".join(lines)
    lines.append(f"{len(errors)} error(s):")
    lines += [f"  - {error}" for error in errors[:SHOWN_ERRORS]]
    if len(errors) > SHOWN_ERRORS:
        lines.append(f"  … and {len(errors) - SHOWN_ERRORS} more (--json shows them all)")
    return "\n".join(lines)


def seconds_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def _print(value: Any) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, indent=2))
