"""Connecting a shop, or editing its connection: the guide's form, the branch chosen from those
KiotViet lists, each problem beside its field, and the take-over question asked in words.

Secrets typed into the form are never written back into a page: after a refusal the operator
types them again, and when editing, leaving them blank keeps the stored ones."""

from __future__ import annotations

from typing import Any

from flask import jsonify, render_template, request
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from adapters.connections import Connection, ConnectionSecrets
from adapters.errors import PermanentError, TransientError
from admin.connections import RETAILER, ConnectionAdmin, ConnectionInvalid
from admin.console.blueprint import blueprint, connection_or_404
from admin.console.forms import REQUIRED, ConnectionForm, add_error
from admin.kiotviet_check import check_kiotviet
from schemas.kiotviet_sales import KvBranch
from wiring import current_services

Page = str | tuple[str, int]


@blueprint.route("/shops/new", methods=["GET", "POST"])
def new_shop() -> Page:
    """Connect a shop that has no connection yet."""
    return connection_page(None)


@blueprint.route("/shops/<shop_id>/edit", methods=["GET", "POST"])
def edit_shop(shop_id: str) -> Page:
    """Change a shop's connection; blank secrets keep the stored ones."""
    return connection_page(connection_or_404(shop_id))


def connection_page(connection: Connection | None) -> Page:
    form = ConnectionForm(data=_prefill(connection) if connection and request.method == "GET" else None)
    if connection is not None:
        form.shop_id.data = connection.shop_id  # the address says which shop, not the form
    if request.method == "GET":
        return _render(form, connection, _stored_branches(connection) if connection else [])
    valid = form.validate_on_submit()
    body = _body(form, _kept_secrets(form, connection))
    if not valid or body is None:
        return _render(form, connection, [], 422)
    shop_id = str(form.shop_id.data)
    if connection is None and current_services().connections.get(shop_id) is not None:
        add_error(form.shop_id, _("This shop is already connected; edit its connection instead."))
        return _render(form, connection, [], 422)
    if not form.branch_id.data:
        return _choose_branch(form, connection, body)
    try:
        saved = ConnectionAdmin(current_services()).save(shop_id, body)
    except ConnectionInvalid as exc:
        return _refused(form, connection, body, exc)
    return render_template("console/saved.html", saved=saved)


@blueprint.post("/shops/check")
def check_credentials() -> Response | tuple[Response, int]:
    """For the form's script: the branches KiotViet lists for these credentials, and problems."""
    form = ConnectionForm()
    shop_id = form.shop_id.data or ""
    stored = _kept_secrets(form, current_services().connections.get(shop_id) if shop_id else None)
    secret = form.client_secret.data or (stored.client_secret if stored else "")
    if not (form.retailer.data and RETAILER.match(form.retailer.data) and form.client_id.data and secret):
        return jsonify(branches=[], errors={"": [_("Fill in the connection name, Client ID and secret first.")]}), 422
    client = ConnectionAdmin(current_services()).client(form.retailer.data, form.client_id.data, secret)
    try:
        check = check_kiotviet(client, None, form.surcharge_code.data or None)
    except ConnectionInvalid as exc:
        return jsonify(branches=[], errors=exc.by_field()), exc.status
    errors = ConnectionInvalid(check.errors).by_field() if check.errors else {}
    return jsonify(branches=[_branch_json(b) for b in check.branches], errors=errors, warnings=check.warnings)


def _kept_secrets(form: ConnectionForm, connection: Connection | None) -> ConnectionSecrets | None:
    """The stored secrets, for fields left blank, while the form still names the same KiotViet app."""
    if connection is None or (form.retailer.data, form.client_id.data) != (connection.retailer, connection.client_id):
        return None
    return current_services().connections.readable_secrets(connection.shop_id)


def _body(form: ConnectionForm, stored: ConnectionSecrets | None) -> dict[str, Any] | None:
    """The admin API's body from the form; None (errors added) when a needed secret is blank."""
    secret = form.client_secret.data or (stored.client_secret if stored else "")
    token = form.abaha_api_token.data or (stored.abaha_api_token if stored else "")
    for field, value in ((form.client_secret, secret), (form.abaha_api_token, token)):
        if not value:
            add_error(field, str(REQUIRED))
    if not (secret and token):
        return None
    return {"retailer": form.retailer.data, "client_id": form.client_id.data, "client_secret": secret,
            "branch_id": form.branch_id.data, "surcharge_code": form.surcharge_code.data or None,
            "abaha_api_token": token, "take_over_webhooks": bool(form.take_over_webhooks.data)}  # fmt: skip


def _choose_branch(form: ConnectionForm, connection: Connection | None, body: dict[str, Any]) -> Page:
    """No branch yet: check the credentials and offer the shop's branches."""
    client = ConnectionAdmin(current_services()).client(body["retailer"], body["client_id"], body["client_secret"])
    try:
        check = check_kiotviet(client, None, body["surcharge_code"])
    except ConnectionInvalid as exc:
        return _refused(form, connection, body, exc)
    _place_errors(form, ConnectionInvalid(check.errors).by_field() if check.errors else {})
    if check.branches:
        add_error(form.branch_id, _("Choose the branch to sync (the guide recommends the central one)."))
    return _render(form, connection, check.branches, 422)


def _refused(form: ConnectionForm, connection: Connection | None, body: dict[str, Any],
             exc: ConnectionInvalid) -> Page:  # fmt: skip
    """Each problem beside its field; the take-over question when another integration holds hooks."""
    by_field = exc.by_field()
    credentials_work = exc.status == 422 and "client_secret" not in by_field and "retailer" not in by_field
    branches = _branches(body["retailer"], body["client_id"], body["client_secret"]) if credentials_work else []
    if branches and "branch_id" in by_field and str(body["branch_id"]) not in {str(b.id) for b in branches}:
        known = ", ".join(f"{b.id} ({b.name})" if b.name else str(b.id) for b in branches)
        by_field["branch_id"] = [_("Branch %(id)s does not exist in KiotViet; the shop's branches: %(known)s.",
                                   id=body["branch_id"], known=known)]  # fmt: skip
    general = [] if exc.taken else _place_errors(form, by_field)
    return _render(form, connection, branches, exc.status, general=general, taken=exc.taken)


def _place_errors(form: ConnectionForm, by_field: dict[str, list[str]]) -> list[str]:
    """Put each message on its field; answer those that belong to none."""
    general: list[str] = []
    for name, messages in by_field.items():
        if name and name in form and name not in ("csrf_token", "take_over_webhooks"):
            for message in messages:
                add_error(form[name], message)
        else:
            general += [f"{name}: {m}" if name else m for m in messages]
    return general


def _render(form: ConnectionForm, connection: Connection | None, branches: list[KvBranch], status: int = 200,
            *, general: list[str] | None = None, taken: list[dict[str, str]] | None = None) -> Page:  # fmt: skip
    form.client_secret.data = form.abaha_api_token.data = ""  # never back into the page
    page = render_template("console/connect.html", form=form, connection=connection, branches=branches,
                           general=general or [], taken=taken or [])  # fmt: skip
    return (page, status) if status != 200 else page


def _prefill(connection: Connection) -> dict[str, Any]:
    return {"shop_id": connection.shop_id, "retailer": connection.retailer, "client_id": connection.client_id,
            "branch_id": str(connection.branch_id), "surcharge_code": connection.surcharge_code or ""}  # fmt: skip


def _stored_branches(connection: Connection) -> list[KvBranch]:
    """The shop's branches read with its stored secret, or none when that fails."""
    stored = current_services().connections.readable_secrets(connection.shop_id)
    return _branches(connection.retailer, connection.client_id, stored.client_secret) if stored else []


def _branches(retailer: str, client_id: str, secret: str) -> list[KvBranch]:
    try:
        return ConnectionAdmin(current_services()).client(retailer, client_id, secret).branches()
    except (PermanentError, TransientError):
        return []


def _branch_json(branch: KvBranch) -> dict[str, Any]:
    return {"id": branch.id, "name": branch.name}
