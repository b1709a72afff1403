"""Salesforce's errors as typed exceptions, each classed by what the engine should do about it.

- transient: retry later with backoff (network, timeouts, 5xx, UNABLE_TO_LOCK_ROW, ...)
- limit: the org's API allocation is exhausted: slow down for that org only
- auth: the access token is no good: refresh once and retry
- reauth: the refresh token is no good: the connection needs the owner to reconnect
- permanent: Salesforce says the data or the setup is wrong: fail now, keep its words
"""

from __future__ import annotations

import json
from typing import Any, Literal

ErrorKind = Literal["transient", "limit", "auth", "reauth", "permanent"]

TRANSIENT_CODES = frozenset(
    {
        "UNABLE_TO_LOCK_ROW",
        "SERVER_UNAVAILABLE",
        "REQUEST_RUNNING_TOO_LONG",
        "QUERY_TIMEOUT",
        "TXN_SECURITY_METERING_ERROR",
    }
)
LIMIT_CODES = frozenset({"REQUEST_LIMIT_EXCEEDED", "rate_limit_exceeded"})
AUTH_CODES = frozenset({"INVALID_SESSION_ID"})
API_DISABLED_CODES = frozenset({"API_DISABLED_FOR_ORG", "API_CURRENTLY_DISABLED"})


class SalesforceError(Exception):
    """An error from (or on the way to) Salesforce, with Salesforce's own words kept."""

    kind: ErrorKind = "permanent"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_code: str = "",
        fields: list[str] | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.error_code = error_code
        self.fields = fields or []
        self.body = body

    def __str__(self) -> str:
        code = f"{self.error_code}: " if self.error_code else ""
        fields = f" (fields: {', '.join(self.fields)})" if self.fields else ""
        return f"{code}{self.message}{fields}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "status": self.status,
            "error_code": self.error_code,
            "message": self.message,
            "fields": self.fields,
        }


class TransientError(SalesforceError):
    kind: ErrorKind = "transient"


class SalesforceUnreachable(TransientError):
    """No answer: DNS, connection refused, TLS, timeout, or the connection dropped."""


class RequestLimitExceeded(SalesforceError):
    kind: ErrorKind = "limit"


class InvalidSession(SalesforceError):
    kind: ErrorKind = "auth"


class NeedsReauth(SalesforceError):
    """The refresh token was refused (`invalid_grant`): only the owner reconnecting helps."""

    kind: ErrorKind = "reauth"


class PermanentError(SalesforceError):
    kind: ErrorKind = "permanent"


class ApiDisabled(PermanentError):
    """API_DISABLED_FOR_ORG or API_CURRENTLY_DISABLED."""


class HostNotAllowed(PermanentError):
    """A login or instance URL that is neither Salesforce's nor configured."""


class OAuthError(PermanentError):
    """The OAuth dance failed for a reason other than a dead refresh token."""


def error_for(status: int, body_text: str) -> SalesforceError:
    """The typed error for a REST reply with a non-2xx status."""
    try:
        body = json.loads(body_text) if body_text else None
    except ValueError:
        body = None
    first: dict[str, Any] = {}
    if isinstance(body, list) and body and isinstance(body[0], dict):
        first = body[0]
    elif isinstance(body, dict):
        first = body
    code = str(first.get("errorCode") or first.get("error") or "")
    message = str(
        first.get("message")
        or first.get("error_description")
        or body_text[:300]
        or f"HTTP {status}"
    )
    fields = [str(f) for f in first.get("fields") or []]
    return error_from_code(code, message, status=status, fields=fields, body=body)


def error_from_code(
    code: str,
    message: str,
    *,
    status: int | None = None,
    fields: list[str] | None = None,
    body: Any = None,
) -> SalesforceError:
    """The typed error for an error code (REST `errorCode`, Collections `statusCode`, OAuth)."""
    cls: type[SalesforceError]
    if code in AUTH_CODES or (status == 401 and not code):
        cls = InvalidSession
    elif code in LIMIT_CODES or status == 429:
        cls = RequestLimitExceeded
    elif code in TRANSIENT_CODES or (status is not None and status >= 500):
        cls = TransientError
    elif code in API_DISABLED_CODES:
        cls = ApiDisabled
    elif code == "invalid_grant":
        cls = NeedsReauth
    else:
        cls = PermanentError
    return cls(message, status=status, error_code=code, fields=fields, body=body)
