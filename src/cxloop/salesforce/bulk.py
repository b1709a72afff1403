"""Bulk API 2.0 ingest jobs: a thin client on `SalesforceClient`, and Salesforce's CSV rules.

A job takes one CSV upload (at most 150 MB once base64-encoded, so about 100 MB of CSV):
create it (`Open`), upload the data, close it (`UploadComplete`) or abort it; Salesforce then
processes it (`InProgress` → `JobComplete`, `Failed` or `Aborted`) and keeps three result CSVs:
the records that succeeded (`sf__Id`, `sf__Created`, the uploaded columns), those that failed
(`sf__Id`, `sf__Error`, the uploaded columns) and, for a failed or aborted job, those it never
processed. Results do not come back in upload order.

CSV values follow Salesforce's rules: a comma, a quote or a line break is quoted (quotes
doubled); an empty value leaves a field alone and `#N/A` sets it to null; booleans are
`true`/`false`; dates and datetimes ISO 8601 (datetimes in UTC, `Z`); numbers never in
exponent form. Errors are the typed ones of `salesforce.errors`, as the REST client raises.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from cxloop.salesforce.client import SalesforceClient, checked_name
from cxloop.salesforce.errors import (
    PermanentError,
    SalesforceError,
    SalesforceUnreachable,
    error_from_code,
)

OPERATIONS = ("insert", "update", "upsert", "delete")
OPEN, UPLOAD_COMPLETE, IN_PROGRESS = "Open", "UploadComplete", "InProgress"
JOB_COMPLETE, FAILED, ABORTED = "JobComplete", "Failed", "Aborted"
FINISHED = frozenset({JOB_COMPLETE, FAILED, ABORTED})
NULL = "#N/A"  # a value that sets a field to null; an empty value leaves it unchanged
MAX_UPLOAD_BYTES = 100_000_000  # 150 MB once base64-encoded, Salesforce's limit per upload
LINE_ENDINGS = MappingProxyType({"LF": "\n", "CRLF": "\r\n"})


class CsvValueError(ValueError):
    """A value that cannot go into a Bulk API 2.0 CSV (a list, a nested object, a NUL)."""


@dataclass(frozen=True)
class BulkJobInfo:
    """What Salesforce says about an ingest job."""

    id: str
    state: str
    operation: str = ""
    sobject: str = ""
    records_processed: int = 0
    records_failed: int = 0
    error_message: str = ""

    @property
    def is_finished(self) -> bool:
        """JobComplete, Failed or Aborted: no record of it changes any more."""
        return self.state in FINISHED

    @classmethod
    def from_reply(cls, body: Any) -> BulkJobInfo:
        """Read a JobInfo reply (create, close, abort, get)."""
        if not isinstance(body, dict) or not body.get("id") or not body.get("state"):
            raise SalesforceUnreachable(
                f"Salesforce answered a Bulk job without id or state: {body!r:.200}"
            )
        return cls(
            id=str(body["id"]),
            state=str(body["state"]),
            operation=str(body.get("operation") or ""),
            sobject=str(body.get("object") or ""),
            records_processed=int(body.get("numberRecordsProcessed") or 0),
            records_failed=int(body.get("numberRecordsFailed") or 0),
            error_message=str(body.get("errorMessage") or ""),
        )


@dataclass(frozen=True)
class BulkResult:
    """One row of a result CSV: the uploaded values, and Salesforce's verdict."""

    values: dict[str, str]
    success: bool
    id: str | None = None
    created: bool | None = None
    error: SalesforceError | None = None


class BulkClient:
    """Bulk API 2.0 ingest calls for one connection, through its REST client (the same token
    refresh, typed errors, limit info and call count)."""

    def __init__(self, client: SalesforceClient) -> None:
        self.client = client

    @property
    def _jobs(self) -> str:
        return f"{self.client.base}/jobs/ingest"

    def create_job(
        self,
        sobject: str,
        operation: str,
        *,
        external_id_field: str | None = None,
        line_ending: str = "LF",
    ) -> BulkJobInfo:
        """Create an ingest job (state Open)."""
        if operation not in OPERATIONS:
            raise PermanentError(f"Bulk API 2.0 has no operation {operation!r} here.")
        if line_ending not in LINE_ENDINGS:
            raise PermanentError(f"lineEnding is LF or CRLF, not {line_ending!r}.")
        body: dict[str, Any] = {
            "object": checked_name(sobject),
            "operation": operation,
            "contentType": "CSV",
            "columnDelimiter": "COMMA",
            "lineEnding": line_ending,
        }
        if operation == "upsert":
            if not external_id_field:
                raise PermanentError("An upsert job needs its external id field.")
            body["externalIdFieldName"] = checked_name(external_id_field)
        return BulkJobInfo.from_reply(self.client._json("POST", f"{self._jobs}/", json=body))

    def upload(self, job_id: str, data: bytes) -> None:
        """Upload the job's CSV (one upload per job)."""
        if len(data) > MAX_UPLOAD_BYTES:
            raise PermanentError(
                f"The CSV is {len(data)} bytes; a Bulk API 2.0 upload takes at most "
                f"{MAX_UPLOAD_BYTES}.",
                error_code="EXCEEDED_MAX_SIZE_REQUEST",
            )
        self.client.request(
            "PUT",
            f"{self._jobs}/{_job_id(job_id)}/batches",
            content=data,
            headers={"Content-Type": "text/csv"},
        )

    def close(self, job_id: str) -> BulkJobInfo:
        """Mark the upload complete: Salesforce queues the job for processing."""
        return self._set_state(job_id, UPLOAD_COMPLETE)

    def abort(self, job_id: str) -> BulkJobInfo:
        """Abort the job (an Open job's data is then never processed)."""
        return self._set_state(job_id, ABORTED)

    def _set_state(self, job_id: str, state: str) -> BulkJobInfo:
        body = self.client._json("PATCH", f"{self._jobs}/{_job_id(job_id)}/", json={"state": state})
        return BulkJobInfo.from_reply(body)

    def info(self, job_id: str) -> BulkJobInfo:
        """The job's state and counts."""
        return BulkJobInfo.from_reply(self.client._json("GET", f"{self._jobs}/{_job_id(job_id)}/"))

    def wait(self, job_id: str, *, timeout_s: float = 600.0, every_s: float = 1.0) -> BulkJobInfo:
        """Poll until the job is finished (for the CLI and tests: the engine never blocks a
        worker thread on a job, it schedules a check)."""
        deadline = time.monotonic() + timeout_s
        while True:
            info = self.info(job_id)
            if info.is_finished:
                return info
            if time.monotonic() > deadline:
                raise SalesforceUnreachable(
                    f"Bulk job {job_id} still {info.state} after {timeout_s:.0f} s."
                )
            time.sleep(every_s)

    def successful_results(self, job_id: str) -> Iterator[BulkResult]:
        """The records Salesforce wrote (any order), read one at a time as they are asked for:
        a job's results are never all in memory as objects."""
        return (
            BulkResult(
                values=_values(row),
                success=True,
                id=row.get("sf__Id") or None,
                created=(row.get("sf__Created") or "").lower() == "true",
            )
            for row in self._csv(job_id, "successfulResults")
        )

    def failed_results(self, job_id: str) -> Iterator[BulkResult]:
        """The records Salesforce refused, each with its error (any order), read one at a
        time as they are asked for."""
        return (
            BulkResult(
                values=_values(row),
                success=False,
                id=row.get("sf__Id") or None,
                error=parse_error(row.get("sf__Error") or ""),
            )
            for row in self._csv(job_id, "failedResults")
        )

    def unprocessed_records(self, job_id: str) -> list[dict[str, str]]:
        """The records of a failed or aborted job that Salesforce never processed."""
        return [_values(row) for row in self._csv(job_id, "unprocessedrecords")]

    def _csv(self, job_id: str, which: str) -> Iterator[dict[str, str]]:
        # The request goes now (its errors raise here); the rows are parsed as they are read.
        reply = self.client.request(
            "GET", f"{self._jobs}/{_job_id(job_id)}/{which}/", headers={"Accept": "text/csv"}
        )
        return iter_csv(reply.content)


def _job_id(job_id: str) -> str:
    # A job id goes into a URL path: only Salesforce's id alphabet, 15 or 18 characters.
    if len(job_id) not in (15, 18) or not job_id.isalnum():
        raise PermanentError(f"{job_id!r} is not a Bulk job id.")
    return job_id


def _values(row: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in row.items() if not k.startswith("sf__")}


# --- CSV


def csv_value(value: Any) -> str:
    """A field value as a Bulk API 2.0 CSV cell (before quoting): None → `#N/A` (null)."""
    if value is None or value == "":
        # An empty cell would leave the field as it is; a Collections call with "" or null
        # clears it. `#N/A` does what the Collections call does.
        return NULL
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise CsvValueError(f"{value!r} is not a number Salesforce takes")
        text = repr(value)
        return format(Decimal(text), "f") if "e" in text or "E" in text else text
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
            f"{moment.microsecond // 1000:03d}Z"
        )
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        if "\x00" in value:
            raise CsvValueError("a value holds a NUL character")
        # One line ending for the whole file: Salesforce refuses a CSV that mixes them.
        return value.replace("\r\n", "\n").replace("\r", "\n")
    raise CsvValueError(f"a {type(value).__name__} cannot go into a CSV cell")


def csv_row(record: dict[str, Any]) -> dict[str, str]:
    """A record (field → value, as a Collections call sends it) as CSV cells. A relationship
    set by a parent's external id (`{"Account": {"Ext__c": "A1"}}`) becomes `Account.Ext__c`."""
    cells: dict[str, str] = {}
    for name, value in record.items():
        if name == "attributes":
            continue
        if isinstance(value, dict):
            inner = {k: v for k, v in value.items() if k != "attributes"}
            if len(inner) != 1:
                raise CsvValueError(f"{name}: a relationship names exactly one external id field")
            ((key, parent_value),) = inner.items()
            cells[f"{name}.{key}"] = csv_value(parent_value)
            continue
        cells[name] = csv_value(value)
    return cells


def write_csv(
    columns: Sequence[str], rows: Iterable[dict[str, str]], *, line_ending: str = "LF"
) -> bytes:
    """The CSV of an ingest job: the header, then each row's cells in the header's order (a
    row without a column leaves that field alone). Quoting as Salesforce reads it."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=LINE_ENDINGS[line_ending], quoting=csv.QUOTE_MINIMAL)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([row.get(c, "") for c in columns])
    return buffer.getvalue().encode("utf-8")


def iter_csv(data: bytes) -> Iterator[dict[str, str]]:
    """The rows of a result CSV, by column name, read as they are asked for (the text is
    decoded at once: a file that is not UTF-8 fails before any row)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SalesforceUnreachable(
            f"Salesforce sent a result CSV that is not UTF-8 ({exc})."
        ) from exc
    return _rows_of(text)


def _rows_of(text: str) -> Iterator[dict[str, str]]:
    if not text.strip():
        return
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    try:
        yield from reader
    except csv.Error as exc:
        raise SalesforceUnreachable(
            f"Salesforce sent a result CSV cxloop cannot read (line {reader.line_num}: {exc})."
        ) from exc


def parse_error(text: str) -> SalesforceError:
    """`sf__Error` as a typed error: `CODE:message:Field1,Field2 --` (or `CODE:message:--`).
    The message may itself hold colons: the code is before the first, the fields after the
    last."""
    body = text.strip()
    if body.endswith("--"):
        body = body[:-2].rstrip()
    code, sep, rest = body.partition(":")
    if not sep or not code or not code.replace("_", "").isalnum():
        return error_from_code("UNKNOWN_EXCEPTION", text.strip() or "Salesforce gave no reason.")
    message, sep, fields_text = rest.rpartition(":")
    if not sep:  # no field part at all
        message, fields_text = rest, ""
    fields = [f.strip() for f in fields_text.split(",") if f.strip()]
    return error_from_code(code.strip(), message.strip(), fields=fields)
