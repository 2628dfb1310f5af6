"""Log lines: structlog's written straight to stderr in the chosen format, the standard library's
in the same one; secrets named by a key redacted, and none printed from a traceback's frames."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from logs import configure_logging

SECRET = "the-shops-client-secret-value"


@pytest.fixture(autouse=True)
def restore() -> Iterator[None]:
    yield
    configure_logging("json")


def fail_holding_a_secret(log: structlog.typing.FilteringBoundLogger) -> None:
    client_secret = SECRET  # a local of the failing frame
    try:
        raise ValueError("refused for " + client_secret[:3])
    except ValueError:
        log.exception("call.failed", shop_id="s1")


def test_json_lines_carry_the_logger_level_and_traceback_and_redact_secret_keys(
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    configure_logging("json")
    log = structlog.get_logger("tests.logs.json")
    log.info("one.line", shop_id="s1", client_secret=SECRET)
    log.debug("below.the.level")
    fail_holding_a_secret(log)
    logging.getLogger("rq.worker").info("a library's line")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(x["event"], x["level"], x["logger"]) for x in lines] == [
        ("one.line", "info", "tests.logs.json"), ("call.failed", "error", "tests.logs.json"),
        ("a library's line", "info", "rq.worker"),
    ]  # fmt: skip
    assert lines[0]["client_secret"] == "[redacted]"
    assert "ValueError: refused for the" in lines[1]["exception"]
    assert SECRET not in json.dumps(lines)


def test_a_console_traceback_is_plain_and_prints_no_frame_locals(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("console")
    log = structlog.get_logger("tests.logs.console")
    fail_holding_a_secret(log)
    said = capsys.readouterr().err
    assert "call.failed" in said and "Traceback (most recent call last)" in said
    assert "ValueError: refused for the" in said
    assert SECRET not in said
