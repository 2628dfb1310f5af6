"""`flask --app wsgi connections ...`: the admin API's operations for a terminal."""

from __future__ import annotations

import json
from typing import Any

import click
from flask import Flask

from admin.connections import ConnectionAdmin, ConnectionInvalid
from admin.failed import requeue_failed
from wiring import current_services


def register_commands(app: Flask) -> None:
    app.cli.add_command(connections)
    app.cli.add_command(requeue)


@click.group()
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
@click.option("--shop-id", default=None)
@click.option("--type", "kind", default=None, help="an event type, e.g. product.update")
def requeue(shop_id: str | None, kind: str | None) -> None:
    """Replay failed jobs."""
    ids = requeue_failed(current_services().redis, shop_id, kind)
    click.echo(f"requeued {len(ids)} job(s)")


def _print(value: Any) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, indent=2))
