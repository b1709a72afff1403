"""Salesforce's error shapes: the REST error envelope, per-record DML errors, OAuth errors.

The REST API answers errors with a JSON *array* of ``{"message", "errorCode"[, "fields"]}``;
sObject Collections report each record's errors as ``{"statusCode", "message", "fields"}``;
the OAuth token endpoint answers a JSON *object* ``{"error", "error_description"}``, the revoke
endpoint the same two keys form-encoded.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RecordError:
    """One DML error on one record, as Salesforce reports it (code, message, fields)."""

    code: str
    message: str
    fields: list[str] = field(default_factory=list)

    def as_rest(self) -> dict:
        """The REST error envelope entry (single-record calls)."""
        return {"message": self.message, "errorCode": self.code, "fields": self.fields}

    def as_collection(self) -> dict:
        """The sObject Collections per-record entry (``statusCode`` instead of ``errorCode``)."""
        return {"statusCode": self.code, "message": self.message, "fields": self.fields}


class SalesforceError(Exception):
    """A whole REST call refused: an HTTP status and a list of errors for the envelope."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: list[str] | None = None,
        *,
        code_first: bool = False,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields
        # NOT_FOUND bodies put errorCode first in the captures; keep the same order.
        self.code_first = code_first
        self.headers = headers or {}

    def body(self) -> list[dict]:
        """The JSON error envelope: an array with one entry."""
        if self.code_first:
            entry: dict = {"errorCode": self.code, "message": self.message}
        else:
            entry = {"message": self.message, "errorCode": self.code}
        if self.fields is not None:
            entry["fields"] = self.fields
        return [entry]

    @classmethod
    def from_record_error(cls, error: RecordError, status: int = 400) -> SalesforceError:
        """Promote a per-record DML error to a single-record call's failure."""
        return cls(status, error.code, error.message, list(error.fields))


class OAuthError(Exception):
    """A token or revoke endpoint error: ``error`` and ``error_description`` with an HTTP status
    (JSON from the token endpoint, form-encoded from the revoke endpoint)."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status

    def body(self) -> dict:
        """The JSON object Salesforce's token endpoint answers with."""
        return {"error": self.error, "error_description": self.description}


# Constructors for the errors the REST layer raises most; the messages are Salesforce's.


def not_found(message: str = "The requested resource does not exist") -> SalesforceError:
    """404 NOT_FOUND."""
    return SalesforceError(404, "NOT_FOUND", message, code_first=True)


def invalid_session() -> SalesforceError:
    """401 INVALID_SESSION_ID: no, unknown, expired or revoked access token."""
    return SalesforceError(401, "INVALID_SESSION_ID", "Session expired or invalid")


def json_parser_error(message: str) -> SalesforceError:
    """400 JSON_PARSER_ERROR: the body is not JSON or a value has the wrong JSON type."""
    return SalesforceError(400, "JSON_PARSER_ERROR", message)


def malformed_query(message: str) -> SalesforceError:
    """400 MALFORMED_QUERY."""
    return SalesforceError(400, "MALFORMED_QUERY", message)


def request_limit_exceeded() -> SalesforceError:
    """403 REQUEST_LIMIT_EXCEEDED: the org's rolling 24-hour API allocation is spent."""
    return SalesforceError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")


def api_disabled_for_user() -> SalesforceError:
    """403 API_CURRENTLY_DISABLED: the user's profile lacks API Enabled."""
    return SalesforceError(403, "API_CURRENTLY_DISABLED", "API is disabled for this user")


def unknown_sobject_type(name: str) -> str:
    """Salesforce's message for an object that does not exist (or is not visible)."""
    return (
        f"sObject type '{name}' is not supported. If you are attempting to use a custom object,"
        " be sure to append the '__c' after the entity name. Please reference your WSDL or the"
        " describe call for the appropriate names."
    )
