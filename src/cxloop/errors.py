"""Errors a person can act on. Services raise these; the web and CLI layers shape them.

Each carries a stable `code` (for scripts), a `message` (for people) and optional `details`.
The kinds below say what went wrong, never how a protocol reports it: the HTTP status of each
kind is decided once, at the web edge (`cxloop.web.errors.ERROR_STATUSES`).
"""

from __future__ import annotations

from typing import Any


class CxloopError(Exception):
    """Base of every error cxloop reports to a user on purpose (a request that cannot be done)."""

    code = "error"

    def __init__(
        self,
        message: str,
        *,
        details: Any = None,
        code: str | None = None,
        localized: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if code is not None:
            self.code = code
        # The message is already in the reader's language (a page's own error, made with the
        # page's gettext): pages show it as it is instead of the sentence for its code.
        self.localized = localized


class InvalidInput(CxloopError):
    """The request is well-formed but its content is not acceptable (`details` lists every
    problem)."""

    code = "invalid_input"
    # The problems as objects with their codes (a workflow document's), for pages that say
    # them in their own language; `details` carries them for the API.
    problems: tuple[Any, ...] = ()


class Unreadable(CxloopError):
    """The input cannot be read at all (not JSON, not YAML), so there is nothing to check."""

    code = "unreadable"


class TooLarge(CxloopError):
    """The input is larger than the thing it describes may be."""

    code = "too_large"


class Unauthenticated(CxloopError):
    """The caller did not say who they are, or said it wrongly."""

    code = "unauthenticated"


class Forbidden(CxloopError):
    """The caller can see the object but may not do this to it."""

    code = "forbidden"


class NotFound(CxloopError):
    """The object does not exist, or the caller may not know that it does.

    `subject` names the kind of object ("survey", "run", ...) without changing the reply's
    code: a page in another language says "Survey not found" in its words
    (web/ui/messages.py NOT_FOUND_MESSAGES).
    """

    code = "not_found"

    def __init__(
        self,
        message: str,
        *,
        subject: str | None = None,
        details: Any = None,
        code: str | None = None,
        localized: bool = False,
    ) -> None:
        super().__init__(message, details=details, code=code, localized=localized)
        self.subject = subject


class Conflict(CxloopError):
    """The change clashes with what is stored (a taken name, a duplicate email...)."""

    code = "conflict"


class LimitReached(CxloopError):
    """A configured limit would be exceeded (connections per user...)."""

    code = "limit_reached"


class Expired(CxloopError):
    """The thing existed but its time is over (a link, an offer)."""

    code = "expired"


class TooManyAttempts(CxloopError):
    """Too many failed logins or token checks (or submissions): wait `retry_after_s` seconds."""

    code = "too_many_attempts"

    def __init__(self, message: str, *, retry_after_s: int, code: str | None = None) -> None:
        super().__init__(message, details={"retry_after_s": retry_after_s}, code=code)
        self.retry_after_s = retry_after_s


class Misconfigured(CxloopError):
    """This process is set up so that it cannot work (keys that do not fit, settings)."""

    code = "misconfigured"
