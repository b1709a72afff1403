"""Bulk API 2.0: ingest jobs and query jobs, in Salesforce's wire formats.

Ingest: ``POST /jobs/ingest`` creates a job (state ``Open``); ``PUT /jobs/ingest/{id}/batches``
uploads its CSV (201, once per job, at most 150 MB once base64-encoded); ``PATCH`` with
``{"state": "UploadComplete"}`` closes it, or ``{"state": "Aborted"}`` aborts it. A closed job
is processed in the background: ``UploadComplete`` → ``InProgress`` → ``JobComplete`` (or
``Failed`` when the CSV cannot be read, ``Aborted`` when aborted meanwhile). Records go through
the same DML path as REST writes (permissions, validation, required fields, lookups, unique
values, outbound message rules) in chunks of ``bulk_chunk_size`` records, one transaction each,
with the org's per-record delay slept between chunks. Results are CSV:
``successfulResults/`` (``sf__Id``, ``sf__Created``, the uploaded columns), ``failedResults/``
(``sf__Id``, ``sf__Error``, the uploaded columns) and ``unprocessedrecords/`` (the uploaded
columns).

Query: ``POST /jobs/query`` with SOQL checks the query at once (its errors are the REST query's)
and runs it in the background (``UploadComplete`` → ``InProgress`` → ``JobComplete``);
``GET /jobs/query/{id}/results?locator=&maxRecords=`` pages the CSV with the
``Sforce-NumberOfRecords`` and ``Sforce-Locator`` headers (``null`` on the last page).

Jobs live in memory (they are not kept in ``--db``) and are dropped by a reset of their org.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from . import ids
from .dml import Caller, Dml, MultipleMatches, RecordFailure
from .errors import RecordError, SalesforceError, not_found
from .restbase import RestContext, RestResult, allow, parse_json_body
from .schema import FieldDef, FieldType, SObjectDef
from .soql import Compiler, parse

if TYPE_CHECKING:
    from .emulator import Emulator
    from .orgs import Org

log = logging.getLogger("sfemu.bulk")

JOB_PREFIX = "750"
INGEST_OPERATIONS = ("insert", "update", "upsert", "delete", "hardDelete")
QUERY_OPERATIONS = ("query", "queryAll")
DELIMITERS = {
    "COMMA": ",",
    "TAB": "\t",
    "PIPE": "|",
    "SEMICOLON": ";",
    "CARET": "^",
    "BACKQUOTE": "`",
}
LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}
CSV_TYPE = "text/csv"
# Salesforce's states; the terminal ones accept no change but deletion.
OPEN, UPLOAD_COMPLETE, IN_PROGRESS = "Open", "UploadComplete", "InProgress"
JOB_COMPLETE, FAILED, ABORTED = "JobComplete", "Failed", "Aborted"
FINISHED = (JOB_COMPLETE, FAILED, ABORTED)
INTERNAL_BATCH = 10_000  # records per internal batch of a Bulk API 2.0 ingest job
NULL_MARKER = "#N/A"  # a CSV value that sets a field to null (an empty value leaves it alone)


def _timestamp() -> str:
    """Salesforce's job timestamps: ``2018-12-18T22:51:36.000+0000``."""
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}+0000"


def _job_error(code: str, message: str, status: int = 400) -> SalesforceError:
    # Bulk API 2.0 errors are the REST envelope with errorCode first.
    return SalesforceError(status, code, message, code_first=True)


def _invalid_state(message: str) -> SalesforceError:
    return _job_error("INVALIDJOBSTATE", message)


def format_error(error: RecordError) -> str:
    """A record error as ``sf__Error`` shows it: ``CODE:message:Field1,Field2 --``, or
    ``CODE:message:--`` when no field is named."""
    fields = f"{','.join(error.fields)} " if error.fields else ""
    return f"{error.code}:{error.message}:{fields}--"


@dataclass
class Job:
    """One Bulk API 2.0 job (ingest or query)."""

    id: str
    kind: str  # "ingest" or "query"
    org_id: str
    user_id: str
    api_version: str
    operation: str
    object_name: str
    line_ending: str = "LF"
    column_delimiter: str = "COMMA"
    external_id_field: str | None = None
    query: str | None = None
    state: str = OPEN
    error_message: str | None = None
    created_date: str = field(default_factory=_timestamp)
    system_modstamp: str = ""
    # Ingest: the upload, its parsed rows, and each processed row's outcome.
    data: bytes | None = None
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    successes: list[tuple[int, str, bool]] = field(default_factory=list)
    failures: list[tuple[int, str, str]] = field(default_factory=list)
    processed: int = 0  # rows handled so far (the first `processed` rows)
    # Query: the result columns and rows as text.
    columns: list[str] = field(default_factory=list)
    results: list[list[str]] = field(default_factory=list)
    processing_ms: int = 0

    def __post_init__(self) -> None:
        self.system_modstamp = self.system_modstamp or self.created_date

    def touch(self, state: str | None = None) -> None:
        """Change the state (if given) and the modification stamp."""
        if state is not None:
            self.state = state
        self.system_modstamp = _timestamp()

    @property
    def delimiter(self) -> str:
        """The column delimiter character."""
        return DELIMITERS[self.column_delimiter]

    @property
    def newline(self) -> str:
        """The line ending characters."""
        return LINE_ENDINGS[self.line_ending]

    def summary(self) -> dict[str, Any]:
        """The job as create, close and abort answer it."""
        body: dict[str, Any] = {
            "id": self.id,
            "operation": self.operation,
            "object": self.object_name,
            "createdById": self.user_id,
            "createdDate": self.created_date,
            "systemModstamp": self.system_modstamp,
            "state": self.state,
        }
        if self.external_id_field is not None:
            body["externalIdFieldName"] = self.external_id_field
        body.update(
            {
                "concurrencyMode": "Parallel",
                "contentType": "CSV",
                "apiVersion": float(self.api_version),
            }
        )
        if self.kind == "ingest":
            body["contentUrl"] = f"services/data/v{self.api_version}/jobs/ingest/{self.id}/batches"
        body.update({"lineEnding": self.line_ending, "columnDelimiter": self.column_delimiter})
        return body

    def info(self) -> dict[str, Any]:
        """The job as Get Job Info answers it (the summary plus type and progress)."""
        body = self.summary()
        ordered: dict[str, Any] = {}
        job_type = "V2Ingest" if self.kind == "ingest" else "V2Query"
        for key, value in body.items():
            # Get Job Info puts jobType after apiVersion (the guide's example).
            if key in ("contentUrl", "lineEnding") and "jobType" not in ordered:
                ordered["jobType"] = job_type
            ordered[key] = value
        if self.kind == "ingest":
            ordered["numberRecordsProcessed"] = self.processed
            ordered["numberRecordsFailed"] = len(self.failures)
        else:
            ordered["numberRecordsProcessed"] = len(self.results)
        ordered["retries"] = 0
        ordered["totalProcessingTime"] = self.processing_ms
        if self.kind == "ingest":
            ordered["apiActiveProcessingTime"] = self.processing_ms
            ordered["apexProcessingTime"] = 0
        else:
            ordered["isPkChunkingSupported"] = False
        if self.error_message is not None:
            ordered["errorMessage"] = self.error_message
        return ordered


class CsvProblem(Exception):
    """The uploaded CSV cannot be processed: the job fails with this message."""


class _JobGone(Exception):
    """The job was aborted or deleted, or its org or user is gone: processing stops."""


@dataclass
class Column:
    """One CSV column: a field of the object, or ``Relationship.ExternalIdField``."""

    name: str
    field: FieldDef
    parent_key: str | None = None  # the external id field of the parent, for Rel.Field


class BulkJobs:
    """The org's Bulk API 2.0 jobs and the threads that process them."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.jobs: dict[str, Job] = {}
        self._threads: list[threading.Thread] = []

    # -- lifecycle ------------------------------------------------------------------------

    def clear(self, org_id: str | None = None) -> None:
        """Forget the jobs (of one org); processing threads notice and stop."""
        for job_id in [j.id for j in self.jobs.values() if org_id in (None, j.org_id)]:
            self.jobs.pop(job_id, None)

    def stop(self, timeout: float = 5.0) -> None:
        """Forget every job and wait for the processing threads to end."""
        with self.emulator.lock:
            self.clear()
        for thread in list(self._threads):
            thread.join(timeout)
        self._threads = []

    def wait(self, job_id: str, timeout: float = 60.0) -> Job:
        """Block until a job reaches JobComplete, Failed or Aborted (tests, Python callers)."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.jobs.get(job_id)
            if job is None:
                raise KeyError(job_id)
            if job.state in FINISHED:
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job.state} after {timeout} s")
            time.sleep(0.01)

    def _start(self, job: Job) -> None:
        thread = threading.Thread(target=self._run, args=(job,), name=f"sfemu-bulk-{job.id}")
        thread.daemon = True
        self._threads = [t for t in self._threads if t.is_alive()]
        self._threads.append(thread)
        thread.start()

    # -- HTTP -----------------------------------------------------------------------------

    def handle(
        self,
        ctx: RestContext,
        method: str,
        parts: list[str],
        params: dict[str, list[str]],
        body: Any,
    ) -> RestResult:
        """Route ``/jobs/ingest...`` and ``/jobs/query...``."""
        if not parts or parts[0] not in ("ingest", "query"):
            raise not_found()
        kind, rest = parts[0], parts[1:]
        if not rest:
            allow(method, "GET", "POST")
            if method == "GET":
                return self._list(ctx, kind)
            if kind == "ingest":
                return self._create_ingest(ctx, parse_json_body(body))
            return self._create_query(ctx, parse_json_body(body))
        job = self._job(ctx, kind, rest[0])
        if len(rest) == 1:
            allow(method, "GET", "PATCH", "DELETE")
            if method == "GET":
                return RestResult(200, job.info())
            if method == "PATCH":
                return self._change_state(job, parse_json_body(body))
            return self._delete(job)
        if len(rest) == 2 and kind == "ingest" and rest[1] == "batches":
            allow(method, "PUT")
            return self._upload(ctx, job, body)
        if (
            len(rest) == 2
            and kind == "ingest"
            and rest[1].lower()
            in (
                "successfulresults",
                "failedresults",
                "unprocessedrecords",
            )
        ):
            allow(method, "GET")
            return self._ingest_results(job, rest[1].lower())
        if len(rest) == 2 and kind == "query" and rest[1] == "results":
            allow(method, "GET")
            return self._query_results(ctx, job, params)
        raise not_found()

    def _job(self, ctx: RestContext, kind: str, job_id: str) -> Job:
        normalized = ids.try_normalize(job_id)
        job = self.jobs.get(normalized) if normalized else None
        caller = ctx.caller
        if (
            job is None
            or job.kind != kind
            or job.org_id != caller.org.id
            or (job.user_id != caller.user.id and not caller.profile.modify_all_data)
        ):
            raise not_found()
        return job

    def _list(self, ctx: RestContext, kind: str) -> RestResult:
        caller = ctx.caller
        records = []
        for job in self.jobs.values():
            if job.kind != kind or job.org_id != caller.org.id:
                continue
            if job.user_id != caller.user.id and not caller.profile.modify_all_data:
                continue
            entry = job.summary()
            entry.pop("contentUrl", None)
            entry = {**entry, "jobType": "V2Ingest" if kind == "ingest" else "V2Query"}
            records.append(entry)
        return RestResult(200, {"done": True, "records": records, "nextRecordsUrl": None})

    def _options(self, payload: dict[str, Any]) -> tuple[str, str]:
        line_ending = payload.get("lineEnding", "LF")
        delimiter = payload.get("columnDelimiter", "COMMA")
        if line_ending not in LINE_ENDINGS:
            raise _job_error("INVALIDJOB", f"Invalid lineEnding {line_ending!r}: use LF or CRLF")
        if delimiter not in DELIMITERS:
            raise _job_error(
                "INVALIDJOB",
                f"Invalid columnDelimiter {delimiter!r}: use one of {', '.join(DELIMITERS)}",
            )
        content_type = payload.get("contentType", "CSV")
        if content_type != "CSV":
            raise _job_error(
                "INVALIDJOB", f"Invalid contentType {content_type!r}: only CSV is supported"
            )
        return line_ending, delimiter

    def _create_ingest(self, ctx: RestContext, payload: Any) -> RestResult:
        if not isinstance(payload, dict):
            raise _job_error("INVALIDJOB", "The request body must be a JSON object")
        operation = payload.get("operation")
        if operation not in INGEST_OPERATIONS:
            raise _job_error(
                "INVALIDJOB",
                f"Invalid operation {operation!r}: use one of {', '.join(INGEST_OPERATIONS)}",
            )
        name = payload.get("object")
        if not isinstance(name, str) or not name:
            raise _job_error("INVALIDJOB", "object is required")
        sobject = ctx.caller.org.sobject(name)
        if sobject is None or not ctx.caller.view(sobject).perms.read:
            raise _job_error("INVALIDJOB", f"InvalidJob : Unable to find object: {name}")
        if operation == "hardDelete" and not ctx.caller.profile.modify_all_data:
            raise _job_error(
                "INVALIDJOB",
                "InvalidJob : hardDelete needs the Bulk API Hard Delete permission",
            )
        external = payload.get("externalIdFieldName")
        key_name: str | None = None
        if operation == "upsert":
            if not isinstance(external, str) or not external:
                raise _job_error("INVALIDJOB", "externalIdFieldName is required for upsert")
            key = ctx.caller.view(sobject).field(external)
            if key is None or not (
                key.external_id or key.name == "Id" or (key.id_lookup and key.unique)
            ):
                raise _job_error(
                    "INVALIDJOB",
                    f"InvalidJob : Field name provided, {external} is not an External ID or"
                    f" indexed field for {sobject.name}",
                )
            key_name = key.name
        elif external is not None:
            raise _job_error("INVALIDJOB", "externalIdFieldName is only for upsert")
        line_ending, delimiter = self._options(payload)
        emulator = self.emulator
        job = Job(
            id=emulator.new_id(ctx.caller.org, JOB_PREFIX),
            kind="ingest",
            org_id=ctx.caller.org.id,
            user_id=ctx.caller.user.id,
            api_version=ctx.version,
            operation=operation,
            object_name=sobject.name,
            line_ending=line_ending,
            column_delimiter=delimiter,
            external_id_field=key_name,
        )
        self.jobs[job.id] = job
        return RestResult(200, job.summary())

    def _create_query(self, ctx: RestContext, payload: Any) -> RestResult:
        if not isinstance(payload, dict):
            raise _job_error("INVALIDJOB", "The request body must be a JSON object")
        operation = payload.get("operation", "query")
        if operation not in QUERY_OPERATIONS:
            raise _job_error(
                "INVALIDJOB", f"Invalid operation {operation!r}: use query or queryAll"
            )
        text = payload.get("query")
        if not isinstance(text, str) or not text.strip():
            raise _job_error("INVALIDJOB", "query is required")
        line_ending, delimiter = self._options(payload)
        # The query is checked now: its errors are those of the REST query resource.
        plan = Compiler(self.emulator, ctx.caller, parse(text), operation == "queryAll").compile()
        if plan.count_only or plan.count_field is not None:
            raise _job_error(
                "API_ERROR", "Aggregate queries (COUNT) are not supported by Bulk API 2.0"
            )
        job = Job(
            id=self.emulator.new_id(ctx.caller.org, JOB_PREFIX),
            kind="query",
            org_id=ctx.caller.org.id,
            user_id=ctx.caller.user.id,
            api_version=ctx.version,
            operation=operation,
            object_name=plan.sobject.name,
            line_ending=line_ending,
            column_delimiter=delimiter,
            query=text,
            state=UPLOAD_COMPLETE,
        )
        self.jobs[job.id] = job
        self._start(job)
        return RestResult(200, job.summary())

    def _change_state(self, job: Job, payload: Any) -> RestResult:
        wanted = payload.get("state") if isinstance(payload, dict) else None
        if wanted == ABORTED:
            if job.state in FINISHED:
                already = "Completed" if job.state == JOB_COMPLETE else job.state
                raise _invalid_state(f"Aborting already {already} Job not allowed")
            job.touch(ABORTED)
            return RestResult(200, job.summary())
        if wanted == UPLOAD_COMPLETE and job.kind == "ingest":
            if job.state != OPEN:
                raise _invalid_state(f"Job {job.id} is {job.state}: only an Open job can be closed")
            job.touch(UPLOAD_COMPLETE)
            self._start(job)
            return RestResult(200, job.summary())
        allowed = "UploadComplete or Aborted" if job.kind == "ingest" else "Aborted"
        raise _invalid_state(f"Invalid state {wanted!r}: a job can be set to {allowed}")

    def _delete(self, job: Job) -> RestResult:
        if job.state in (OPEN, IN_PROGRESS):
            raise _invalid_state(
                f"Job {job.id} is {job.state}: only UploadComplete, JobComplete, Aborted or"
                " Failed jobs can be deleted"
            )
        self.jobs.pop(job.id, None)
        return RestResult(204)

    def _upload(self, ctx: RestContext, job: Job, body: Any) -> RestResult:
        content_type = ctx.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != CSV_TYPE:
            raise _job_error(
                "INVALIDCONTENTTYPE",
                f"Job data must be sent as {CSV_TYPE}, not {content_type or 'no content type'}",
            )
        if job.state != OPEN:
            raise _invalid_state(f"Job {job.id} is {job.state}: data can only go to an Open job")
        if job.data is not None:
            raise _invalid_state(
                f"Job {job.id} already has its data: upload one CSV per job, then close it"
            )
        data = body if isinstance(body, bytes | bytearray) else b""
        encoded = 4 * ((len(data) + 2) // 3)
        limit = self.emulator.settings.bulk_max_upload_base64_bytes
        if encoded > limit:
            raise _job_error(
                "EXCEEDED_MAX_SIZE_REQUEST",
                f"The CSV data is {encoded} bytes once base64-encoded; the limit is {limit}."
                " Upload at most 100 MB of CSV per job.",
                413,
            )
        if not data.strip():
            raise _job_error("INVALIDBATCH", "The CSV data is empty")
        job.data = bytes(data)
        job.touch()
        return RestResult(201)

    # -- results --------------------------------------------------------------------------

    def _csv(self, job: Job, header: list[str], rows: list[list[str]]) -> bytes:
        buffer = io.StringIO()
        writer = csv.writer(
            buffer, delimiter=job.delimiter, lineterminator=job.newline, quoting=csv.QUOTE_ALL
        )
        writer.writerow(header)
        writer.writerows(rows)
        return buffer.getvalue().encode("utf-8")

    def _ingest_results(self, job: Job, which: str) -> RestResult:
        if job.state == OPEN:
            raise _invalid_state(f"Job {job.id} is Open: close it before asking for results")
        if which == "successfulresults":
            header = ["sf__Id", "sf__Created", *job.header]
            rows = [
                [rid, "true" if created else "false", *job.rows[index]]
                for index, rid, created in job.successes
            ]
        elif which == "failedresults":
            header = ["sf__Id", "sf__Error", *job.header]
            rows = [[rid, error, *job.rows[index]] for index, rid, error in job.failures]
        else:
            header = list(job.header)
            if not header and job.data is not None:
                header = _first_line(job)
            rows = job.rows[job.processed :] if job.state in (FAILED, ABORTED) else []
        return RestResult(200, headers={}, content=self._csv(job, header, rows))

    def _query_results(
        self, ctx: RestContext, job: Job, params: dict[str, list[str]]
    ) -> RestResult:
        if job.state != JOB_COMPLETE:
            raise _invalid_state(f"Job {job.id} is {job.state}: results need JobComplete")
        if ctx.version != job.api_version:
            raise _job_error(
                "INVALIDVERSION",
                f"Get the results with the API version the job was created with"
                f" ({job.api_version})",
                409,
            )
        raw_max = (params.get("maxRecords") or [""])[0]
        page = self.emulator.settings.bulk_query_page_size
        if raw_max:
            if not raw_max.isdigit() or int(raw_max) < 1:
                raise _job_error(
                    "INVALIDPARAMETER", f"maxRecords must be a whole number >= 1: {raw_max}"
                )
            page = int(raw_max)
        offset = _read_locator((params.get("locator") or [""])[0], len(job.results))
        chunk = job.results[offset : offset + page]
        end = offset + len(chunk)
        locator = _make_locator(end) if end < len(job.results) else "null"
        return RestResult(
            200,
            headers={"Sforce-NumberOfRecords": str(len(chunk)), "Sforce-Locator": locator},
            content=self._csv(job, job.columns, chunk),
        )

    # -- processing -----------------------------------------------------------------------

    def _alive(self, job: Job) -> bool:
        return self.jobs.get(job.id) is job and job.state != ABORTED

    def _begin(self, job: Job) -> tuple[Org, Caller]:
        """Under the lock: the job in progress, with its org and caller.

        Raises _JobGone when the job was aborted or deleted, or its org or user is gone: there
        is nothing left to do for it.
        """
        org = self.emulator.orgs.get(job.org_id)
        user = org.users_by_id.get(job.user_id) if org else None
        if not self._alive(job) or org is None or user is None:
            raise _JobGone
        job.touch(IN_PROGRESS)
        return org, self.emulator.caller(org, user, job.api_version)

    @staticmethod
    def _finish(job: Job, started: float, state: str) -> None:
        job.processing_ms = int((time.monotonic() - started) * 1000)
        job.touch(state)

    def _run(self, job: Job) -> None:
        """Process a job; an unexpected error fails the job (it never stays InProgress)."""
        try:
            if job.kind == "ingest":
                self._run_ingest(job)
            else:
                self._run_query(job)
        except _JobGone:
            pass  # nothing left to do, nothing to report
        except Exception:
            log.exception("Bulk API 2.0 job %s failed unexpectedly", job.id)
            with self.emulator.lock:
                if self.jobs.get(job.id) is job and job.state not in FINISHED:
                    job.error_message = (
                        "UNKNOWN_EXCEPTION : An unexpected error occurred in sfemu; see its log."
                    )
                    job.touch(FAILED)

    def _run_query(self, job: Job) -> None:
        started = time.monotonic()
        emulator = self.emulator
        with emulator.lock:
            _org, caller = self._begin(job)
            try:
                include_deleted = job.operation == "queryAll"
                engine = emulator.queries
                plan = Compiler(emulator, caller, parse(job.query or ""), include_deleted).compile()
                rows = engine.matching_rows(caller, plan, include_deleted)
                rendered = engine.render(caller, plan, rows)
            except SalesforceError as exc:  # the schema or access changed since creation
                job.error_message = f"InvalidBatch : Failed to process query: {exc}"
                job.touch(FAILED)
                return
            columns: list[tuple[str, str | None, bool]] = []
            for resolved in plan.select:
                is_datetime = resolved.field.type == FieldType.DATETIME
                if resolved.lookup is None:
                    columns.append((resolved.field.name, None, is_datetime))
                else:
                    rel = resolved.relationship or resolved.lookup.name
                    columns.append((resolved.field.name, rel, is_datetime))
            job.columns = [name if rel is None else f"{rel}.{name}" for name, rel, _ in columns]
            job.results = [
                [
                    _text(
                        item.get(name) if rel is None else (item.get(rel) or {}).get(name),
                        is_datetime,
                    )
                    for name, rel, is_datetime in columns
                ]
                for item in rendered
            ]
        delay = emulator.orgs[job.org_id].latency.records_delay_s(len(rows))
        if delay:
            time.sleep(delay)
        with emulator.lock:
            if self._alive(job):
                self._finish(job, started, JOB_COMPLETE)

    def _run_ingest(self, job: Job) -> None:
        started = time.monotonic()
        emulator = self.emulator
        with emulator.lock:
            org, caller = self._begin(job)
            sobject = org.sobject(job.object_name)
            try:
                if sobject is None:
                    raise CsvProblem(f"InvalidJob : Unable to find object: {job.object_name}")
                job.header, job.rows = _parse_csv(job)
                columns = _columns(job, caller, sobject)
            except CsvProblem as problem:
                job.error_message = str(problem)
                self._finish(job, started, FAILED)
                return
        assert sobject is not None
        chunk_size = max(1, emulator.settings.bulk_chunk_size)
        # Salesforce splits a job into internal batches of 10,000 records and processes them in
        # parallel, so the per-record time of a large job is shared between those batches.
        parallel = max(
            1,
            min(
                -(-len(job.rows) // INTERNAL_BATCH),
                emulator.settings.bulk_parallel_batches,
            ),
        )
        while True:
            with emulator.lock:
                if not self._alive(job):
                    return
                start = job.processed
                chunk = job.rows[start : start + chunk_size]
                if not chunk:
                    self._finish(job, started, JOB_COMPLETE)
                    return
                self._process_chunk(job, caller, sobject, columns, start, chunk)
                delay = org.latency.records_delay_s(len(chunk)) / parallel
            if delay:
                time.sleep(delay)

    def _process_chunk(
        self,
        job: Job,
        caller: Caller,
        sobject: SObjectDef,
        columns: list[Column],
        start: int,
        chunk: list[list[str]],
    ) -> None:
        txn = self.emulator.transaction()
        dml = Dml(self.emulator, caller, txn)
        key_field = sobject.fields.get(job.external_id_field) if job.external_id_field else None
        seen_keys: dict[Any, int] = {}
        if key_field is not None:
            position = next(
                i for i, c in enumerate(columns) if c.field is key_field and not c.parent_key
            )
            for row in chunk:
                value = row[position] if position < len(row) else ""
                if value:
                    folded = value if key_field.case_sensitive else value.lower()
                    seen_keys[folded] = seen_keys.get(folded, 0) + 1
        faults = self.emulator.faults
        fault_path = f"/jobs/ingest/{job.id}/{sobject.name}"
        try:
            for offset, row in enumerate(chunk):
                index = start + offset
                given_id = ""
                try:
                    body = _row_body(row, columns)
                    given_id = str(body.get("Id") or "")
                    fault = faults.decide(
                        "bulk", caller.org.id, caller.user.username, job.operation, fault_path
                    ).fault
                    if fault is not None:
                        error = fault.rest_error()
                        raise RecordFailure(RecordError(error.code, error.message, []))
                    outcome = self._write(job, dml, sobject, body, key_field, seen_keys)
                    job.successes.append((index, outcome[0], outcome[1]))
                except RecordFailure as failure:
                    shown = ids.try_normalize(given_id) or given_id
                    job.failures.append((index, shown, format_error(failure.error)))
                except SalesforceError as exc:  # a value of the wrong type for its field
                    shown = ids.try_normalize(given_id) or given_id
                    error = RecordError(
                        "INVALID_TYPE_ON_FIELD_IN_RECORD", exc.message, exc.fields or []
                    )
                    job.failures.append((index, shown, format_error(error)))
                job.processed = index + 1
            txn.commit()
        except Exception:
            txn.rollback()
            raise
        job.touch()

    def _write(
        self,
        job: Job,
        dml: Dml,
        sobject: SObjectDef,
        body: dict[str, Any],
        key_field: FieldDef | None,
        seen_keys: dict[Any, int],
    ) -> tuple[str, bool]:
        operation = job.operation
        if operation in ("delete", "hardDelete"):
            record_id = str(body.get("Id") or "")
            if not record_id:
                raise RecordFailure(RecordError("MISSING_ARGUMENT", "Id not specified", []))
            return dml.delete(record_id, sobject), False
        values = dml.read_body(sobject, body)
        if operation == "insert":
            if values.get("Id"):
                raise RecordFailure(
                    RecordError("INVALID_FIELD", "cannot specify Id in an insert call", ["Id"])
                )
            return dml.create(sobject, values), True
        if operation == "update":
            record_id = values.get("Id")
            if not record_id:
                raise RecordFailure(
                    RecordError("MISSING_ARGUMENT", "Id not specified in an update call", [])
                )
            return dml.update(sobject, str(record_id), values), False
        assert key_field is not None
        key = values.get(key_field.name) if key_field.name != "Id" else body.get("Id")
        if key is not None:
            folded = key if key_field.case_sensitive else str(key).lower()
            if seen_keys.get(folded, 0) > 1:
                raise RecordFailure(
                    RecordError(
                        "DUPLICATE_EXTERNAL_ID",
                        f"Duplicate external id specified: {key}",
                        [key_field.name],
                    )
                )
        try:
            return dml.upsert(sobject, key_field, key, values)
        except MultipleMatches as multiple:
            raise RecordFailure(
                RecordError(
                    "DUPLICATE_EXTERNAL_ID",
                    f"more than one record found for external id field: {multiple.record_ids}",
                    [key_field.name],
                )
            ) from None


# -- CSV ------------------------------------------------------------------------------------


def _first_line(job: Job) -> list[str]:
    text = (job.data or b"").decode("utf-8", errors="replace").lstrip("\ufeff")
    first = text.split("\n", 1)[0].rstrip("\r")
    return next(csv.reader([first], delimiter=job.delimiter), [])


def _parse_csv(job: Job) -> tuple[list[str], list[list[str]]]:
    """The header and rows of the job's upload, or CsvProblem saying what is wrong."""
    try:
        text = (job.data or b"").decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CsvProblem(
            f"ClientInputError : The CSV data is not UTF-8 (byte {exc.start})"
        ) from None
    text = text.lstrip("\ufeff")
    has_crlf = "\r\n" in text
    bare_lf = text.replace("\r\n", "").count("\n") > 0
    if (job.line_ending == "LF" and has_crlf) or (job.line_ending == "CRLF" and bare_lf):
        raise CsvProblem(
            "ClientInputError : LineEnding is invalid on user data. Current LineEnding setting"
            f" is {job.line_ending}"
        )
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=job.delimiter, strict=True)
    try:
        parsed = [row for row in reader if row]
    except csv.Error as exc:
        raise CsvProblem(
            f"ClientInputError : Failed to parse the CSV data at line {reader.line_num}: {exc}"
        ) from None
    if not parsed:
        raise CsvProblem("InvalidBatch : The CSV data has no header row")
    header, rows = [name.strip() for name in parsed[0]], parsed[1:]
    for number, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise CsvProblem(
                f"ClientInputError : Row {number} has {len(row)} columns; the header has"
                f" {len(header)}"
            )
    return header, rows


def _columns(job: Job, caller: Caller, sobject: SObjectDef) -> list[Column]:
    """Each header column resolved against the object, as the job's user sees it."""
    view = caller.view(sobject)
    columns: list[Column] = []
    seen: set[str] = set()
    for name in job.header:
        if name.lower() in seen:
            raise CsvProblem(f"InvalidBatch : Duplicate field name: {name}")
        seen.add(name.lower())
        if "." in name:
            relationship, _, key_name = name.partition(".")
            lookup = sobject.relationship(relationship)
            target = (
                caller.org.sobject(lookup.reference_to[0])
                if lookup and lookup.reference_to
                else None
            )
            key = target.field(key_name) if target else None
            if (
                lookup is None
                or key is None
                or lookup.name.lower() not in view.readable
                or not (key.external_id or key.name == "Id")
            ):
                raise CsvProblem(f"InvalidBatch : Field name not found : {name}")
            columns.append(Column(name, lookup, key.name))
            continue
        fdef = view.field(name)
        if fdef is None:
            raise CsvProblem(f"InvalidBatch : Field name not found : {name}")
        columns.append(Column(name, fdef))
    names = {c.field.name for c in columns if c.parent_key is None}
    if job.operation in ("delete", "hardDelete") and names != {"Id"}:
        raise CsvProblem(
            f"InvalidBatch : The '{job.operation}' batch must contain only the 'Id' field"
        )
    if job.operation == "upsert" and job.external_id_field not in names:
        raise CsvProblem(
            f"InvalidBatch : Field name not provided: {job.external_id_field} (the job's"
            " externalIdFieldName)"
        )
    return columns


def _row_body(row: list[str], columns: list[Column]) -> dict[str, Any]:
    """A CSV row as a REST-style body: empty values are left out, ``#N/A`` sets null,
    ``Rel.Field`` columns become ``{"Rel": {"Field": value}}``."""
    body: dict[str, Any] = {}
    for column, value in zip(columns, row, strict=True):
        if value == "":
            continue
        typed: Any = None if value == NULL_MARKER else value
        if column.parent_key is not None:
            if typed is None:
                body[column.field.name] = None
            else:
                body[column.field.relationship_name or column.field.name] = {
                    column.parent_key: typed
                }
            continue
        body[column.field.name] = typed
    return body


def _text(value: Any, is_datetime: bool = False) -> str:
    """A value as Bulk API 2.0 query results write it (datetimes in UTC with ``Z``, where the
    REST API writes ``+0000``)."""
    if value is None:
        return ""
    if is_datetime and isinstance(value, str) and value.endswith("+0000"):
        return value[: -len("+0000")] + "Z"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _make_locator(offset: int) -> str:
    # An opaque string like Salesforce's (MTAwMDA is "10000" in base64 without padding).
    return base64.b64encode(str(offset).encode()).decode().rstrip("=")


def _read_locator(locator: str, total: int) -> int:
    if not locator or locator == "null":
        return 0
    try:
        text = base64.b64decode(locator + "=" * (-len(locator) % 4), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        text = ""
    if not text.isdigit() or int(text) > total:
        raise _job_error("INVALIDLOCATOR", f"Invalid locator: {locator}")
    return int(text)
