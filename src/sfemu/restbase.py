"""What the REST handlers share: the call context, the result, reading a JSON body, 405s."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .dml import Caller, Dml, Transaction
from .errors import SalesforceError, json_parser_error, not_found
from .schema import SObjectDef

if TYPE_CHECKING:
    from .emulator import Emulator


@dataclass
class RestResult:
    """A REST answer before it becomes an HTTP response."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    # A non-JSON answer (Bulk API 2.0 result CSVs): sent as is with this content type.
    content: bytes | None = None
    content_type: str = "text/csv"


@dataclass
class RestContext:
    """One call's caller, transaction and DML helper."""

    emulator: Emulator
    caller: Caller
    txn: Transaction
    headers: dict[str, str] = field(default_factory=dict)
    dml: Dml = field(init=False)
    # Records the call handled (Collections, Composite): the latency model's per-record delay.
    records: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.dml = Dml(self.emulator, self.caller, self.txn)

    @property
    def version(self) -> str:
        """The API version of the call (``62.0``)."""
        return self.caller.api_version

    def sobject(self, name: str) -> SObjectDef:
        """An object the caller can read, or 404 NOT_FOUND."""
        sobject = self.caller.org.sobject(name)
        if sobject is None or not self.caller.view(sobject).perms.read:
            raise not_found()
        return sobject


def parse_json_body(raw: bytes | Any) -> Any:
    """The request body as JSON, or JSON_PARSER_ERROR as Salesforce words it."""
    if not isinstance(raw, bytes | bytearray):
        return raw
    if not raw.strip():
        raise json_parser_error(
            "The HTTP entity body is required, but this request has no entity body."
        )
    try:
        return json.loads(raw)
    except UnicodeDecodeError:
        raise json_parser_error("Invalid UTF-8 in the request body") from None
    except json.JSONDecodeError as exc:
        found = exc.doc[exc.pos] if exc.pos < len(exc.doc) else "EOF"
        raise json_parser_error(
            f"Unexpected character ('{found}' (code {ord(found) if len(found) == 1 else -1})):"
            " expected a valid value (number, String, array, object, 'true', 'false' or 'null')"
            f" at [line:{exc.lineno},"
            f" column:{exc.colno}]"
        ) from None


def allow(method: str, *allowed: str) -> None:
    """405 METHOD_NOT_ALLOWED unless the method is one of those allowed."""
    if method not in allowed:
        raise SalesforceError(
            405,
            "METHOD_NOT_ALLOWED",
            f"HTTP Method '{method}' not allowed. Allowed are {','.join(allowed)}",
            code_first=True,
        )
