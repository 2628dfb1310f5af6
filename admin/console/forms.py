"""The console's forms. Each carries the session's CSRF token; secret fields never render a value."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, Field, HiddenField, PasswordField, SelectMultipleField, StringField
from wtforms.fields.choices import SelectChoice  # type: ignore[attr-defined]  # the stubs predate it
from wtforms.validators import InputRequired, Length, Optional, Regexp
from wtforms.widgets import CheckboxInput, ListWidget

from adapters.syncruns import ENTITIES
from admin.connections import RETAILER, SHOP_ID

REQUIRED = _l("Required.")
RETAILER_RULE = _l("Lower-case letters, digits and '-', as in the address.")
SHOP_ID_RULE = _l("Use 1-64 letters, digits, '.', '_' or '-'.")
TOO_LONG = _l("At most %(max)d characters.")
ENTITY_LABELS = {
    "categories": _l("Categories"),
    "products": _l("Products"),
    "pricebooks": _l("Price books"),
    "prices": _l("Prices"),
    "customer_groups": _l("Customer groups"),
    "customers": _l("Customers"),
}


def add_error(field: Field, message: str) -> None:
    """Show `message` beside `field` (after validation, as the service's checks find more)."""
    field.errors = [*field.errors, message]


def _strip(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value


class LoginForm(FlaskForm):  # type: ignore[misc]
    token = PasswordField(_l("Admin token"), validators=[InputRequired(REQUIRED)])
    next = HiddenField()


class LanguageForm(FlaskForm):  # type: ignore[misc]
    lang = HiddenField()
    next = HiddenField()


class ConnectionForm(FlaskForm):  # type: ignore[misc]
    """The guide's fields (Đồng bộ Kiotviet, bước 2), plus the shop id and Abaha's token."""

    shop_id = StringField(_l("Shop ID on Abaha"), filters=[_strip],
                          validators=[InputRequired(REQUIRED), Regexp(SHOP_ID, message=SHOP_ID_RULE)])  # fmt: skip
    retailer = StringField(_l("Connection name"), filters=[_strip],
                           description=_l("From the shop's KiotViet address: https://thoitrangmogi.kiotviet.vn "
                                          "gives thoitrangmogi."),
                           validators=[InputRequired(REQUIRED), Regexp(RETAILER, message=RETAILER_RULE)])  # fmt: skip
    # the service's own limits (admin.connections), checked here so KiotViet is not asked first
    client_id = StringField(_l("Client ID"), filters=[_strip],
                            validators=[InputRequired(REQUIRED), Length(max=200, message=TOO_LONG)])  # fmt: skip
    client_secret = PasswordField(
        _l("Secret (Mã bảo mật)"), filters=[_strip], validators=[Length(max=500, message=TOO_LONG)]
    )
    branch_id = StringField(_l("Branch"), filters=[_strip],
                            validators=[Optional(), Regexp(r"^\d{1,12}$", message=_l("Choose a branch."))])  # fmt: skip
    surcharge_code = StringField(_l("Surcharge code (Mã thu khác)"), filters=[_strip],
                                 description=_l("Optional: the code of the other fee (Thu khác) that carries an "
                                                "order's shipping and other fees, e.g. THK000001."),
                                 validators=[Length(max=100, message=TOO_LONG)])  # fmt: skip
    abaha_api_token = PasswordField(
        _l("Abaha API token"), filters=[_strip], validators=[Length(max=500, message=TOO_LONG)]
    )
    take_over_webhooks = BooleanField()


class SyncForm(FlaskForm):  # type: ignore[misc]
    entities = SelectMultipleField(_l("What to sync"), choices=[SelectChoice(e, ENTITY_LABELS[e]) for e in ENTITIES],
                                   default=list(ENTITIES), validators=[InputRequired(_l("Choose at least one."))],
                                   widget=ListWidget(prefix_label=False),
                                   option_widget=CheckboxInput())  # fmt: skip
