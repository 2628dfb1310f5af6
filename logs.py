"""Logging: structlog for our own events, the standard library's (RQ, gunicorn) through it."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

# Keys whose values never reach a log line, whatever a caller passes.
SECRET_KEY_PARTS = ("secret", "token", "password", "authorization", "signature", "api_key")


def redact_secrets(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Replace the value of any key that names a secret."""
    for key in list(event_dict):
        if any(part in key.lower() for part in SECRET_KEY_PARTS):
            event_dict[key] = "[redacted]"
    return event_dict


def log_format_for(chosen: str, *, explicit: bool, local: bool, stream: TextIO | None = None) -> str:
    """The format to log in: what LOG_FORMAT says; without it, console on the terminal of a
    local run (no REDIS_URL), JSON when piped, captured or in production."""
    if explicit or not local:
        return chosen
    stream = stream or sys.stderr
    return "console" if stream.isatty() else chosen


class StderrLogger:
    """Where structlog's own lines go: each rendered line written whole to the process's stderr
    of the moment, under one lock. Our lines skip the standard library's machinery (a record,
    a handler, a formatter), which cost a webhook delivery about 0.2 ms under load; `name` is
    what `add_logger_name` reads."""

    _lock = threading.Lock()

    def __init__(self, name: str = "root") -> None:
        self.name = name

    def msg(self, message: str) -> None:
        with self._lock:
            stream = sys.stderr
            stream.write(message + "\n")
            stream.flush()

    debug = info = warning = warn = error = critical = exception = fatal = log = msg


def named_logger(*args: Any) -> StderrLogger:
    """structlog's logger factory: `get_logger(__name__)` names the logger."""
    return StderrLogger(str(args[0])) if args else StderrLogger()


def configure_logging(log_format: str = "json", level: int = logging.INFO) -> None:
    """Route structlog's lines and the standard library's logging (RQ, gunicorn) to stderr in
    one format."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
    ]
    renderer: Any = (
        # plain tracebacks: a pretty one prints each frame's locals, secrets among them
        structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)
        if log_format == "console"
        else structlog.processors.JSONRenderer(ensure_ascii=False)
    )
    # the console renderer formats exceptions itself (plainly)
    exceptions = [] if log_format == "console" else [structlog.processors.format_exc_info]
    structlog.configure(
        processors=[*shared, *exceptions, renderer],
        logger_factory=named_logger,
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("urllib3", "werkzeug"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
