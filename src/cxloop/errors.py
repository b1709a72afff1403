"""Errors a person can act on. Services raise these; the web and CLI layers shape them.

Each carries a stable `code` (for scripts), a `message` (for people) and optional `details`.
"""

from __future__ import annotations

from typing import Any


class CxloopError(Exception):
    """Base of every error cxloop reports to a user on purpose."""

    code = "error"
    http_status = 400

    def __init__(self, message: str, *, details: Any = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if code is not None:
            self.code = code


class InvalidInput(CxloopError):
    """The request is well-formed but its content is not acceptable."""

    code = "invalid_input"
    http_status = 422
    # The problems as objects with their codes (a workflow document's), for pages that say
    # them in their own language; `details` carries them for the API.
    problems: tuple[Any, ...] = ()


class Unauthenticated(CxloopError):
    code = "unauthenticated"
    http_status = 401


class Forbidden(CxloopError):
    """The caller can see the object but may not do this to it."""

    code = "forbidden"
    http_status = 403


class NotFound(CxloopError):
    """The object does not exist, or the caller may not know that it does."""

    code = "not_found"
    http_status = 404


class Conflict(CxloopError):
    """The change clashes with what is stored (a taken name, a duplicate email...)."""

    code = "conflict"
    http_status = 409


class LimitReached(CxloopError):
    """A configured limit would be exceeded (connections per user...)."""

    code = "limit_reached"
    http_status = 409


class TooManyAttempts(CxloopError):
    """Too many failed logins or token checks (or submissions): wait `retry_after_s` seconds."""

    code = "too_many_attempts"
    http_status = 429

    def __init__(self, message: str, *, retry_after_s: int, code: str | None = None) -> None:
        super().__init__(message, details={"retry_after_s": retry_after_s}, code=code)
        self.retry_after_s = retry_after_s
