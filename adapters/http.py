"""HTTP sessions with timeouts and retries (backoff, jitter, Retry-After) for both APIs."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from adapters.errors import TransientError
from config import MAX_PEER_READ_TIMEOUT

# retried in place (idempotent calls only) before a job sees them; every 5xx is transient too
# (`is_transient`), a 524 included: the origin may have done the work, it must not be read as a refusal
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524})
TIMEOUT = (5.0, float(MAX_PEER_READ_TIMEOUT))  # connect, read (the longest allowed; PEER_READ_TIMEOUT may shorten it)
# A longer Retry-After is not slept through inside a job: the job fails transiently and
# RQ's own retry schedule takes over.
MAX_INLINE_RETRY_AFTER = 30


class PeerSession(requests.Session):
    """A session that knows how long its calls wait: its connect and read timeouts."""

    timeout: tuple[float, float] = TIMEOUT


class StatusRetry(Retry):
    """Retries only the statuses it is given, even when a refusal carries Retry-After."""

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        listed = status_code in (self.status_forcelist or ())
        return listed and super().is_retry(method, status_code, has_retry_after)


def make_session(retry_methods: Iterable[str], attempts: int = 3, backoff: float = 0.5,
                 statuses: Iterable[int] = TRANSIENT_STATUSES,
                 read_timeout: float | None = None) -> PeerSession:  # fmt: skip
    """A session retrying transient failures of `retry_methods` in place."""
    retry = StatusRetry(
        total=attempts,
        connect=attempts,
        read=attempts,
        status=attempts,
        backoff_factor=backoff,
        backoff_jitter=backoff,
        status_forcelist=frozenset(statuses),
        allowed_methods=frozenset(m.upper() for m in retry_methods),
        respect_retry_after_header=True,
        retry_after_max=MAX_INLINE_RETRY_AFTER,
        raise_on_status=False,
    )
    session = PeerSession()
    if read_timeout is not None:
        session.timeout = (TIMEOUT[0], min(float(read_timeout), TIMEOUT[1]))
    adapter = HTTPAdapter(max_retries=retry, pool_connections=4, pool_maxsize=16)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def longest_call_seconds(session: requests.Session, method: str) -> float:
    """How long one call of `method` can take at worst through `session`: every try waits its
    whole connect and read timeouts, every retry its longest Retry-After."""
    adapter = session.get_adapter("https://")
    retry = adapter.max_retries if isinstance(adapter, HTTPAdapter) else Retry(0)
    retried = method.upper() in (retry.allowed_methods or ())
    tries = 1 + (retry.total if retried and isinstance(retry.total, int) else 0)
    timeout = session.timeout if isinstance(session, PeerSession) else TIMEOUT
    return tries * sum(timeout) + (tries - 1) * MAX_INLINE_RETRY_AFTER


def send(session: requests.Session, provider: str, method: str, url: str, **kwargs: Any) -> requests.Response:
    """Send one request; a network failure becomes a TransientError naming the provider."""
    kwargs.setdefault("timeout", session.timeout if isinstance(session, PeerSession) else TIMEOUT)
    try:
        return session.request(method, url, **kwargs)
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise TransientError(f"{provider} did not answer {method} {_path(url)}: {type(exc).__name__}") from exc
    except requests.exceptions.RetryError as exc:
        raise TransientError(f"{provider} kept failing {method} {_path(url)}") from exc


def is_transient(status: int) -> bool:
    """A status worth trying again later: a timeout, throttling or any server-side failure."""
    return status in (408, 429) or status >= 500


def retry_after(response: requests.Response) -> float | None:
    """Seconds the server asked us to wait, when it said so in seconds."""
    value = response.headers.get("Retry-After", "").strip()
    return float(value) if value.isdigit() else None


def _path(url: str) -> str:
    # never the query string: it may carry identifiers we do not want in messages
    return url.split("?", 1)[0]
