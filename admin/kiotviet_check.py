"""Checking a connection's settings against KiotViet before it is saved: the credentials, the
branch, the surcharge code, and the store setting that decides whether out-of-stock orders pass."""

from __future__ import annotations

from dataclasses import dataclass, field

from adapters.errors import KiotVietRejected, TransientError
from adapters.kiotviet import KiotVietClient
from schemas.kiotviet_sales import KvBranch
from workers.hooks import OUT_OF_STOCK_WARNING


class ConnectionInvalid(Exception):
    """The connection cannot be saved; one clear message per problem (`field: message` when it
    is about a field), and the webhook types another integration holds, for the console."""

    def __init__(self, errors: list[str], status: int = 422, taken: list[dict[str, str]] | None = None) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors
        self.status = status
        self.taken = taken or []

    def by_field(self) -> dict[str, list[str]]:
        """The messages keyed by the field they are about ("" for the rest)."""
        found: dict[str, list[str]] = {}
        for message in self.errors:
            name, sep, text = message.partition(": ")
            key = name if sep and name.replace("_", "").isalnum() and name.islower() else ""
            found.setdefault(key, []).append(text if key else message)
        return found


@dataclass
class KiotVietCheck:
    """What validating the credentials against KiotViet found."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    surcharge_id: int | None = None
    branches: list[KvBranch] = field(default_factory=list)


def check_kiotviet(client: KiotVietClient, branch_id: int | None, surcharge_code: str | None) -> KiotVietCheck:
    """Credentials, branch, surcharge code and the out-of-stock ordering setting."""
    check = KiotVietCheck()
    try:
        check.branches = client.branches()
    except KiotVietRejected as exc:
        check.errors.append(f"client_secret: {exc}")
        return check
    except TransientError as exc:
        raise ConnectionInvalid([f"KiotViet did not answer, try again: {exc}"], 502) from exc
    names = {b.id: b.name for b in check.branches}
    if branch_id is not None and branch_id not in names:
        known = ", ".join(f"{i} ({n})" for i, n in sorted(names.items())) or "none"
        check.errors.append(f"branch_id: branch {branch_id} does not exist in KiotViet; the shop's branches: {known}")
    try:
        if surcharge_code:
            check.surcharge_id = surcharge_id(client, surcharge_code, check.errors)
        settings = client.settings()
    except TransientError as exc:
        raise ConnectionInvalid([f"KiotViet did not answer, try again: {exc}"], 502) from exc
    except KiotVietRejected as exc:
        check.errors.append(f"KiotViet refused to show the shop's settings: {exc.kiotviet_message or exc}")
        return check
    if settings.allow_order_when_out_of_stock is False:
        check.warnings.append(OUT_OF_STOCK_WARNING)
    return check


def surcharge_id(client: KiotVietClient, code: str, errors: list[str]) -> int | None:
    try:
        surcharges = client.surcharges()
    except KiotVietRejected as exc:
        errors.append("surcharge_code: KiotViet cannot list other fees (Thu khác): "
                      f"{exc.kiotviet_message or exc}; enable them in KiotViet's store settings")  # fmt: skip
        return None
    for item in surcharges:
        if item.code.lower() == code.lower():
            return item.id
    errors.append(f"surcharge_code: '{code}' is not a surcharge code in KiotViet (Quản lý thu khác); "
                  "create it there or leave surcharge_code out")  # fmt: skip
    return None
