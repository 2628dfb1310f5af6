"""The errors a job can meet, split by what the job should do about them."""

from __future__ import annotations


class SyncError(Exception):
    """Base of every error the adapters raise on purpose."""


class TransientError(SyncError):
    """Worth retrying later: a timeout, a connection error, 429, 5xx."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Throttled(TransientError):
    """The peer answered 429: it refused the request before looking at it, so nothing was done."""


class Busy(TransientError):
    """Another worker holds what this change needs (its entity, or its product's stock) for the
    moment: not a failure of the change. Tried again a few seconds later, at a random moment
    (two jobs of one entity fall out of step), without using up its retry schedule."""


class PermanentError(SyncError):
    """Retrying will not help until someone changes something; the message says what."""


class KiotVietRejected(PermanentError):
    """KiotViet refused the request; carries KiotViet's own message."""

    def __init__(self, message: str, status: int, kiotviet_message: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.kiotviet_message = kiotviet_message


class KiotVietNotFound(KiotVietRejected):
    """KiotViet has no such entity (404)."""


class AbahaRejected(PermanentError):
    """Abaha refused the request; carries Abaha's error code and message."""

    def __init__(self, message: str, status: int, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class AbahaNotFound(AbahaRejected):
    """Abaha has no such entity (404)."""
