from __future__ import annotations

import pytest

from config import ConfigError, Settings


def test_defaults_follow_the_spec() -> None:
    settings = Settings.from_env({})
    assert settings.kiotviet_api_url == "https://public.kiotapi.com"
    assert settings.kiotviet_token_url == "https://id.kiotviet.vn/connect/token"
    assert (settings.log_format, settings.reconcile_interval, settings.kiotviet_hourly_budget) == ("json", 900, 5000)
    assert settings.is_local and settings.redis_url is None
    assert settings.peer_read_timeout == 30


@pytest.mark.parametrize(
    "environ, message",
    [({"LOG_FORMAT": "xml"}, "LOG_FORMAT"), ({"RECONCILE_INTERVAL": "soon"}, "RECONCILE_INTERVAL"),
     ({"RECONCILE_INTERVAL": "-1"}, "negative"), ({"KIOTVIET_HOURLY_BUDGET": "10"}, "at least 100"),
     ({"PEER_READ_TIMEOUT": "0"}, "between 1 and 30"), ({"PEER_READ_TIMEOUT": "90"}, "between 1 and 30")],
)  # fmt: skip
def test_bad_settings_are_refused_by_name(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(environ)


def test_trailing_slashes_and_blank_values_are_normalized() -> None:
    settings = Settings.from_env({"ABAHA_API_URL": "http://abaha/", "PUBLIC_BASE_URL": " ", "REDIS_URL": ""})
    assert (settings.abaha_api_url, settings.public_base_url, settings.redis_url) == ("http://abaha", None, None)
