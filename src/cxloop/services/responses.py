"""Use cases for responses: submit, read, list, update, delete, export (streamed), bulk import.

Every write runs the response-event hooks (`response_events.on_response_event`) inside its own
transaction, before the commit. A response submitted whole (API, import) is checked against the
survey's content and refused with every problem listed; answers to questions that the display
logic hides are dropped, and declared embedded data fields nobody set get their defaults.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple, TextIO, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    TypeAdapter,
    ValidationError,
)
from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cxloop.db.base import utcnow
from cxloop.db.models import RESPONSE_SOURCES, Response, Survey
from cxloop.db.response_rows import insert_response_rows, persistent_responses
from cxloop.db.uow import Database
from cxloop.domain.answers import (
    AnswerProblem,
    ResponseRules,
    validate_response,
    visible_answers,
)
from cxloop.domain.ids import new_id
from cxloop.domain.response_csv import ResponseTable, header_row_count
from cxloop.domain.survey_content import SurveyContent
from cxloop.domain.survey_flow import without_off_route_requirements
from cxloop.errors import CxloopError, InvalidInput, NotFound
from cxloop.services import audit
from cxloop.services.access import Actor, SurveyAccess, get_survey_for
from cxloop.services.pagination import Page, check_limit, decode_cursor, encode_cursor
from cxloop.services.survey_content import SurveyRef, content_for, content_of, survey_ref

Source = Literal["web", "api", "import"]
ExportFormat = Literal["csv", "json", "jsonl"]
EXPORT_FORMATS = ("csv", "json", "jsonl")
RESPONSE_ID_PATTERN = r"^R_[A-Za-z0-9]{15}$"
MAX_BULK_ITEMS = 10_000
IMPORT_BATCH_SIZE = 500
EXPORT_CHUNK_SIZE = 1_000
MAX_REPORTED_ROWS = 1_000

M = TypeVar("M", bound=BaseModel)


def new_response_id() -> str:
    """A ResponseID: `R_` and 15 random letters and digits."""
    return new_id("R_")


# -- errors ----------------------------------------------------------------------------------


class SurveyNotAccepting(CxloopError):
    """The survey takes no responses now: it is a draft (not open yet) or closed."""

    http_status = 409

    def __init__(self, survey: Survey | SurveyRef) -> None:
        if survey.status == "closed":
            super().__init__(
                f"Survey {survey.id!r} is closed and takes no more responses.",
                code="survey_closed",
            )
        else:
            super().__init__(
                f"Survey {survey.id!r} is not open yet (status {survey.status}): set its status "
                "to active to collect responses.",
                code="survey_not_open",
            )


def check_accepting(survey: Survey | SurveyRef) -> None:
    """Refuse responses unless the survey is active."""
    if survey.status != "active":
        raise SurveyNotAccepting(survey)


# -- documents in and out --------------------------------------------------------------------


class ResponseDocument(BaseModel):
    """A response as submitted through the API (one object of a bulk array, a JSONL line)."""

    model_config = ConfigDict(extra="forbid")

    values: dict[str, Any] = Field(default_factory=dict)
    embedded_data: dict[str, Any] = Field(default_factory=dict)
    finished: StrictBool = True
    started_at: AwareDatetime | None = None
    ended_at: AwareDatetime | None = None
    language: str | None = Field(default=None, min_length=1, max_length=16)
    distribution_id: str | None = Field(default=None, min_length=1, max_length=20)
    contact_id: str | None = Field(default=None, min_length=1, max_length=20)


class ImportedDocument(ResponseDocument):
    """An imported response: may keep its ResponseID; an exported response's read-only fields
    are accepted and ignored, so that an export imports back as it is."""

    id: str | None = Field(default=None, pattern=RESPONSE_ID_PATTERN)
    survey_id: Any = None
    source: Any = None
    channel: Any = None
    duration_s: Any = None
    created_at: Any = None
    updated_at: Any = None


class ResponseChanges(BaseModel):
    """A PATCH: `values` and `embedded_data` are merged key by key (null removes a key)."""

    model_config = ConfigDict(extra="forbid")

    values: dict[str, Any] | None = None
    embedded_data: dict[str, Any] | None = None
    finished: StrictBool | None = None
    language: str | None = Field(default=None, min_length=1, max_length=16)


def response_document(response: Response) -> dict[str, Any]:
    """A response as the API and the JSON export show it."""
    return {
        "id": response.id,
        "survey_id": response.survey_id,
        "values": response.values,
        "embedded_data": response.embedded_data,
        "started_at": _iso(response.started_at),
        "ended_at": _iso(response.ended_at),
        "duration_s": response.duration_s,
        "finished": response.finished,
        "source": response.source,
        "channel": response.channel,
        "language": response.language,
        "distribution_id": response.distribution_id,
        "contact_id": response.contact_id,
        "created_at": _iso(response.created_at),
        "updated_at": _iso(response.updated_at),
    }


def _parse(model: type[M], raw: Any) -> M:
    if not isinstance(raw, dict):
        raise InvalidInput(
            "A response must be an object with `values` (answers keyed by QID).",
            code="invalid_response",
            details=[_problem(None, "wrong_type", "A response must be an object.")],
        )
    try:
        parsed = model.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            where = ".".join(str(p) for p in error["loc"]) or "body"
            if error["type"] == "extra_forbidden":
                message = "unknown field"
            elif error["type"] == "string_pattern_mismatch" and where == "id":
                message = "a ResponseId is R_ followed by 15 letters and digits"
            else:
                message = error["msg"]
            problems.append(_problem(None, "invalid_field", f"{where}: {message}", where))
        raise _invalid(problems) from None
    for name in ("values", "embedded_data"):
        if _has_nul(getattr(parsed, name, None)):
            # No database keeps NUL in text, and nothing downstream expects one.
            message = f"{name}: text must not contain NUL characters"
            raise _invalid([_problem(None, "nul_character", message, name)])
    return parsed


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _problem(qid: str | None, code: str, message: str, field: str | None = None) -> dict:
    return {"qid": qid, "code": code, "message": message, "field": field}


def _invalid(problems: list[dict[str, Any]]) -> InvalidInput:
    shown = "; ".join(
        f"{p['qid']}: {p['message']}" if p.get("qid") else p["message"] for p in problems[:5]
    )
    more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
    return InvalidInput(
        f"The response has {len(problems)} problem(s): {shown}{more}",
        code="invalid_response",
        details=problems,
    )


def check_document(content: SurveyContent, doc: ResponseDocument) -> list[dict[str, Any]]:
    """Every problem of a submitted response against the survey's content."""
    problems: list[AnswerProblem] = validate_response(content, doc.values, doc.embedded_data)
    problems = without_off_route_requirements(content, problems, doc.values, doc.embedded_data)
    if not doc.finished:
        # An incomplete response may leave required questions open.
        problems = [p for p in problems if p.code != "required"]
    found = [p.as_dict() for p in problems]
    if doc.started_at and doc.ended_at and doc.ended_at < doc.started_at:
        found.append(_problem(None, "bad_dates", "ended_at is before started_at.", "ended_at"))
    return found


def _row(
    survey_id: str,
    content: SurveyContent,
    doc: ResponseDocument,
    *,
    source: Source,
    default_language: str,
    now: datetime,
    response_id: str | None = None,
) -> dict[str, Any]:
    """The column values of a new response (the document was checked already)."""
    ended = _utc(doc.ended_at) or (now if doc.finished else None)
    started = _utc(doc.started_at) or ended or now
    return {
        "id": response_id or new_response_id(),
        "survey_id": survey_id,
        "values": visible_answers(content, doc.values),
        "embedded_data": with_defaults(content, doc.embedded_data),
        "started_at": started,
        "ended_at": ended,
        "duration_s": duration(started, ended),
        "finished": doc.finished,
        "source": source,
        "channel": "import" if source == "import" else "api",
        "language": doc.language or default_language,
        "distribution_id": doc.distribution_id,
        "contact_id": doc.contact_id,
        "created_at": now,
        "updated_at": now,
    }


def with_defaults(content: SurveyContent, embedded_data: Mapping[str, Any]) -> dict[str, Any]:
    """The embedded data with every declared field that has a default and no value filled in."""
    filled = dict(embedded_data)
    for declared in content.embedded_data:
        if declared.default is not None and filled.get(declared.name) in (None, ""):
            filled[declared.name] = declared.default
    return filled


def duration(started: datetime | None, ended: datetime | None) -> int | None:
    """Whole seconds from start to end (never negative); None while unfinished."""
    if started is None or ended is None:
        return None
    return max(0, int((ended - started).total_seconds()))


# -- one response ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Submission:
    """One response submitted whole by `actor` (the API's single POST)."""

    actor: Actor
    survey_id: str
    document: Any
    source: Source = "api"


def submit_response(
    db: Database, actor: Actor, survey_id: str, document: Any, *, source: Source = "api"
) -> Response:
    """Store one response submitted whole (editors and up; the survey must be active)."""
    [outcome] = submit_responses(db, [Submission(actor, survey_id, document, source)])
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def submit_responses(db: Database, submissions: Sequence[Submission]) -> list[Response | Exception]:
    """Store responses submitted one by one, together in one transaction (group commit).

    Each submission is checked on its own and gets its own outcome, in order: the stored
    response, or the error that refused or failed it. The accepted ones commit together, each
    with its runs. Should that transaction fail, each is stored again in a transaction of its
    own, so that one culprit never costs the others their response.
    """
    try:
        return _submit_together(db, submissions)
    except Exception as exc:
        if len(submissions) == 1:
            return [exc]
    return [submit_responses(db, [one])[0] for one in submissions]


def _submit_together(db: Database, submissions: Sequence[Submission]) -> list[Response | Exception]:
    with db.uow() as uow:
        outcomes = _check_submissions(uow.session, submissions)
        rows = [outcome for outcome in outcomes if isinstance(outcome, dict)]
        if not rows:
            return [outcome for outcome in outcomes if isinstance(outcome, Exception)]
        insert_response_rows(uow.session, rows)
        stored = iter(persistent_responses(uow.session, rows))
        responses = [next(stored) if isinstance(o, dict) else o for o in outcomes]
        uow.ledger.record_response_events(
            uow, [r for r in responses if isinstance(r, Response)], "created"
        )
        uow.commit()
    return responses


def _check_submissions(
    session: Session, submissions: Sequence[Submission]
) -> list[dict[str, Any] | Exception]:
    """The row to insert for each submission, or the error that refuses it."""
    surveys: dict[tuple[str, str], SurveyRef | CxloopError] = {}
    now = utcnow()
    outcomes: list[dict[str, Any] | Exception] = []
    for submission in submissions:
        key = (submission.survey_id, submission.actor.id)
        try:
            if key not in surveys:
                try:
                    surveys[key] = survey_ref(
                        session, submission.survey_id, submission.actor, SurveyAccess.EDIT
                    )
                except CxloopError as exc:
                    surveys[key] = exc
            survey = surveys[key]
            if isinstance(survey, CxloopError):
                raise survey
            doc = _parse(ResponseDocument, submission.document)
            check_accepting(survey)
            content = content_for(session, survey)
            problems = check_document(content, doc)
            if problems:
                raise _invalid(problems)
            row = _row(
                survey.id, content, doc, source=submission.source,
                default_language=survey.language, now=now,
            )  # fmt: skip
            outcomes.append(row)
        except CxloopError as exc:
            outcomes.append(exc)
    return outcomes


def get_response(db: Database, actor: Actor, survey_id: str, response_id: str) -> Response:
    """One response (viewers and up)."""
    with db.reader() as uow:
        get_survey_for(uow.session, survey_id, actor, SurveyAccess.VIEW)
        return _response_in(uow.session, survey_id, response_id)


def update_response(
    db: Database, actor: Actor, survey_id: str, response_id: str, changes: Any
) -> Response:
    """Change answers, embedded data, finished or language (editors and up).

    The result is checked as a whole, like a new response; a "updated" event runs.
    """
    with db.uow() as uow:
        survey = get_survey_for(uow.session, survey_id, actor, SurveyAccess.EDIT)
        response = _response_in(uow.session, survey_id, response_id)
        patch = _parse(ResponseChanges, changes)
        content = content_of(survey)
        values = _merge(response.values, patch.values)
        embedded = _merge(response.embedded_data, patch.embedded_data)
        finished = response.finished if patch.finished is None else patch.finished
        problems = check_document(
            content,
            ResponseDocument.model_construct(
                values=values, embedded_data=embedded, finished=finished
            ),
        )
        if problems:
            raise _invalid(problems)
        now = utcnow()
        response.values = visible_answers(content, values)
        response.embedded_data = embedded
        if finished and not response.finished and response.ended_at is None:
            response.ended_at = now
            response.duration_s = duration(response.started_at, now)
        response.finished = finished
        if patch.language is not None:
            response.language = patch.language
        response.updated_at = now
        uow.session.flush()
        audit.record(
            uow.session, actor.id, "response.update", "response", response.id,
            survey_id=survey_id, changed=sorted(patch.model_dump(exclude_unset=True)),
        )  # fmt: skip
        uow.ledger.record_response_events(uow, [response], "updated")
        uow.commit()
    return response


def delete_response(db: Database, actor: Actor, survey_id: str, response_id: str) -> None:
    """Delete one response for good (editors and up)."""
    with db.uow() as uow:
        get_survey_for(uow.session, survey_id, actor, SurveyAccess.EDIT)
        response = _response_in(uow.session, survey_id, response_id)
        audit.record(
            uow.session, actor.id, "response.delete", "response", response.id, survey_id=survey_id
        )
        uow.session.delete(response)
        uow.commit()


def _merge(current: Mapping[str, Any] | None, changes: Mapping[str, Any] | None) -> dict:
    merged = dict(current or {})
    for key, value in (changes or {}).items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def _response_in(session: Session, survey_id: str, response_id: str) -> Response:
    response = session.get(Response, response_id) if len(response_id) <= 40 else None
    if response is None or response.survey_id != survey_id:
        raise NotFound(f"No response {response_id!r} in survey {survey_id!r}.")
    return response


# -- lists and exports -----------------------------------------------------------------------


@dataclass(frozen=True)
class ResponseFilter:
    """Which responses a list or export covers; since/until bound the recorded date."""

    finished: bool | None = None
    source: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def check(self) -> ResponseFilter:
        if self.source is not None and self.source not in RESPONSE_SOURCES:
            raise InvalidInput(
                f"Unknown source {self.source!r}: use one of {', '.join(RESPONSE_SOURCES)}.",
                code="bad_source",
            )
        for name in ("since", "until"):
            moment = getattr(self, name)
            if moment is not None and moment.tzinfo is None:
                raise InvalidInput(f"{name} needs a time zone, e.g. 2026-01-31T00:00:00Z.")
        return self

    def apply(self, query: Any) -> Any:
        if self.finished is not None:
            query = query.where(Response.finished == self.finished)
        if self.source is not None:
            query = query.where(Response.source == self.source)
        if self.since is not None:
            query = query.where(Response.created_at >= self.since)
        if self.until is not None:
            query = query.where(Response.created_at < self.until)
        return query


def list_responses(
    db: Database,
    actor: Actor,
    survey_id: str,
    *,
    filters: ResponseFilter | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[Response]:
    """A survey's responses, oldest first, one page at a time (viewers and up)."""
    check_limit(limit)
    filters = (filters or ResponseFilter()).check()
    after = decode_cursor(cursor) if cursor else None
    if after is not None and after[0].tzinfo is None:
        raise InvalidInput("The cursor is not one this server handed out.", code="bad_cursor")
    with db.reader() as uow:
        get_survey_for(uow.session, survey_id, actor, SurveyAccess.VIEW)
        rows = _chunk(uow.session, survey_id, filters, after, limit + 1)
    has_more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id) if has_more else None
    return Page(items=rows, next_cursor=next_cursor)


def _chunk(
    session: Session,
    survey_id: str,
    filters: ResponseFilter,
    after: tuple[datetime, str | int] | None,
    limit: int,
) -> list[Response]:
    query = (
        select(Response)
        .where(Response.survey_id == survey_id)
        .order_by(Response.created_at, Response.id)
        .limit(limit)
    )
    query = filters.apply(query)
    if after is not None:
        created_at, last_id = after
        query = query.where(
            or_(
                Response.created_at > created_at,
                and_(Response.created_at == created_at, Response.id > str(last_id)),
            )
        )
    return list(session.scalars(query))


def export_responses(
    db: Database,
    actor: Actor,
    survey_id: str,
    fmt: str,
    *,
    filters: ResponseFilter | None = None,
    chunk_size: int = EXPORT_CHUNK_SIZE,
) -> Iterator[str]:
    """The survey's responses as CSV, a JSON array or JSON lines, as an iterator of text chunks.

    Access is checked before this returns, so a refusal is an error and not a broken stream.
    Rows are read `chunk_size` at a time, each chunk in its own short read transaction and
    found by keyset, so memory stays flat however many responses there are.
    """
    if fmt not in EXPORT_FORMATS:
        raise InvalidInput(
            f"Unknown export format {fmt!r}: use csv, json or jsonl.", code="bad_format"
        )
    filters = (filters or ResponseFilter()).check()
    with db.reader() as uow:
        survey = get_survey_for(uow.session, survey_id, actor, SurveyAccess.VIEW)
        content = content_of(survey)
    chunks = _read_chunks(db, survey_id, filters, chunk_size)
    if fmt == "csv":
        return _csv_lines(ResponseTable(content), chunks)
    return _json_lines(chunks, as_array=fmt == "json")


def _read_chunks(
    db: Database, survey_id: str, filters: ResponseFilter, chunk_size: int
) -> Iterator[list[Response]]:
    after: tuple[datetime, str | int] | None = None
    while True:
        with db.reader() as uow:
            rows = _chunk(uow.session, survey_id, filters, after, chunk_size)
        if not rows:
            return
        yield rows
        if len(rows) < chunk_size:
            return
        after = (rows[-1].created_at, rows[-1].id)


def _csv_lines(table: ResponseTable, chunks: Iterator[list[Response]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerows(table.header_rows())
    yield buffer.getvalue()
    for rows in chunks:
        buffer.seek(0)
        buffer.truncate()
        writer.writerows(table.row(r) for r in rows)
        yield buffer.getvalue()


def _json_lines(chunks: Iterator[list[Response]], *, as_array: bool) -> Iterator[str]:
    first = True
    if as_array:
        yield "["
    for rows in chunks:
        lines = [json.dumps(response_document(r), ensure_ascii=False) for r in rows]
        if as_array:
            yield ("\n" if first else ",\n") + ",\n".join(lines)
        else:
            yield "\n".join(lines) + "\n"
        first = False
    if as_array:
        yield "\n]\n" if not first else "]\n"


# -- bulk import -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceRow:
    """One row to import: where it was (line number, or array index), the document read from
    it (None when it could not be read) and the problems found while reading it."""

    position: int
    document: Any
    problems: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class RowOutcome:
    """A row that was not stored, and why."""

    position: int
    problems: list[dict[str, Any]]


@dataclass
class ImportResult:
    """What an import did: rows read, stored and refused (with the first refusals' reasons)."""

    total: int = 0
    stored: int = 0
    failed: int = 0
    bad_rows: list[RowOutcome] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def refuse(self, position: int, problems: list[dict[str, Any]], max_reported: int) -> None:
        self.failed += 1
        if len(self.bad_rows) < max_reported:
            self.bad_rows.append(RowOutcome(position, problems))


def import_responses(
    db: Database,
    actor: Actor,
    survey_id: str,
    rows: Iterable[SourceRow],
    *,
    batch_size: int = IMPORT_BATCH_SIZE,
    on_progress: Callable[[ImportResult], None] | None = None,
    on_stored: Callable[[int, str], None] | None = None,
    max_reported: int = MAX_REPORTED_ROWS,
) -> ImportResult:
    """Import responses (source=import) row by row; bad rows are reported, good rows stored.

    Each row is checked on its own against the content as it was when the import began.
    Good rows are written `batch_size` to a transaction; if a batch fails as a whole (an id
    taken meanwhile, a hook's error), its rows are retried one per transaction so that only
    the culprits are refused. Imports accept any survey status: they bring in past responses.
    `on_stored(position, response_id)` is told about every stored row, `on_progress` after
    every batch.
    """
    with db.reader() as uow:
        survey = survey_ref(uow.session, survey_id, actor, SurveyAccess.EDIT)
        plan = _ImportPlan.of(survey_id, content_for(uow.session, survey), survey.language)
    result = ImportResult()
    pending: list[_Pending] = []
    for row in rows:
        result.total += 1
        values, problems, id_given = _checked_row(plan, row)
        if values is None:
            result.refuse(row.position, problems, max_reported)
            continue
        pending.append((row.position, values, id_given))
        if len(pending) >= batch_size:
            _store_batch(db, pending, result, on_stored, max_reported)
            pending = []
            if on_progress:
                on_progress(result)
    if pending:
        _store_batch(db, pending, result, on_stored, max_reported)
    if on_progress:
        on_progress(result)
    with db.uow() as uow:
        audit.record(
            uow.session, actor.id, "responses.import", "survey", survey_id,
            total=result.total, stored=result.stored, failed=result.failed,
        )  # fmt: skip
        uow.commit()
    return result


# A row waiting to be stored: its position, its column values, and whether its ResponseId came
# with it (only such ids can clash with stored responses; new ones are 89 random bits).
_Pending = tuple[int, dict[str, Any], bool]


@dataclass(frozen=True)
class _ImportPlan:
    """What checking and storing an import's rows needs, prepared once per import."""

    survey_id: str
    language: str
    rules: ResponseRules
    defaults: tuple[tuple[str, str], ...]  # (name, default) of embedded data with a default

    @classmethod
    def of(cls, survey_id: str, content: SurveyContent, language: str) -> _ImportPlan:
        defaults = tuple(
            (f.name, f.default) for f in content.embedded_data if f.default is not None
        )
        return cls(survey_id, language, ResponseRules(content), defaults)


def _checked_row(
    plan: _ImportPlan, row: SourceRow
) -> tuple[dict[str, Any] | None, list[dict[str, Any]], bool]:
    """(column values, [], whether its ResponseId came with it) for a good row; (None, its
    problems, False) for a bad one.

    Exactly what `_parse`, `check_document` and `_row` make of the row, in a fraction of the
    time: the document is read by `_read_document` and checked by the content's prepared rules.
    """
    if row.problems:
        return None, row.problems, False
    try:
        doc = _read_document(row.document)
    except InvalidInput as exc:
        return None, exc.details, False
    rules = plan.rules
    # check_document(), with the prepared rules
    problems = rules.check(doc.values, doc.embedded_data, include_required=doc.finished)
    problems = without_off_route_requirements(
        rules.content, problems, doc.values, doc.embedded_data
    )
    found = [p.as_dict() for p in problems]
    if doc.started_at and doc.ended_at and doc.ended_at < doc.started_at:
        found.append(_problem(None, "bad_dates", "ended_at is before started_at.", "ended_at"))
    if found:
        return None, found, False
    # _row(), with the prepared rules
    now = utcnow()
    ended = _utc(doc.ended_at) or (now if doc.finished else None)
    started = _utc(doc.started_at) or ended or now
    embedded = dict(doc.embedded_data)
    for name, default in plan.defaults:
        if embedded.get(name) in (None, ""):
            embedded[name] = default
    values = {
        "id": doc.id or new_response_id(),
        "survey_id": plan.survey_id,
        "values": rules.visible_answers(doc.values),
        "embedded_data": embedded,
        "started_at": started,
        "ended_at": ended,
        "duration_s": duration(started, ended),
        "finished": doc.finished,
        "source": "import",
        "channel": "import",
        "language": doc.language or plan.language,
        "distribution_id": doc.distribution_id,
        "contact_id": doc.contact_id,
        "created_at": now,
        "updated_at": now,
    }
    return values, [], doc.id is not None


class _PlainDocument(NamedTuple):
    """An imported document read without pydantic (see `_read_document`): the fields of
    `ImportedDocument` that checking and storing it look at, under the same names."""

    values: dict[str, Any]
    embedded_data: dict[str, Any]
    finished: bool
    started_at: datetime | None
    ended_at: datetime | None
    language: str | None
    distribution_id: str | None
    contact_id: str | None
    id: str | None


def _length_limits(field_info: Any) -> tuple[int, int]:
    """(min_length, max_length) of a text field of a pydantic model."""
    shortest, longest = 0, 1 << 62
    for constraint in field_info.metadata:
        shortest = getattr(constraint, "min_length", shortest)
        longest = getattr(constraint, "max_length", longest)
    return shortest, longest


_IMPORTED_FIELDS = frozenset(ImportedDocument.model_fields)
_SCALARS = (int, float, bool)
_SHORT_TEXT_FIELDS = tuple(
    (name, *_length_limits(ImportedDocument.model_fields[name]))
    for name in ("language", "distribution_id", "contact_id")
)
_RESPONSE_ID = re.compile(RESPONSE_ID_PATTERN.removeprefix("^").removesuffix("$"))
_AWARE_DATETIME: TypeAdapter[datetime] = TypeAdapter(AwareDatetime)


def _read_document(raw: Any) -> ImportedDocument | _PlainDocument:
    """`_parse(ImportedDocument, raw)`, the short way for the usual document.

    A document whose every field is plainly what the model accepts (exact types, lengths and
    patterns checked here) is read without building the pydantic model; anything else, odd or
    wrong, goes through `_parse`, so a refusal reads exactly as it always did.
    """
    if type(raw) is dict and raw.keys() <= _IMPORTED_FIELDS:
        doc = _plain_document(raw)
        if doc is not None:
            return doc
    return _parse(ImportedDocument, raw)


def _plain_document(raw: dict[str, Any]) -> _PlainDocument | None:
    """The document, if `_parse` would accept it as it is; None when unsure."""
    values = raw.get("values", {})
    embedded = raw.get("embedded_data", {})
    finished = raw.get("finished", True)
    if type(finished) is not bool or not (_plain_mapping(values) and _plain_mapping(embedded)):
        return None
    for name, shortest, longest in _SHORT_TEXT_FIELDS:
        text = raw.get(name)
        # ASCII only: pydantic refuses text with lone surrogates, which JSON can carry.
        if text is not None and not (
            type(text) is str and text.isascii() and shortest <= len(text) <= longest
        ):
            return None
    response_id = raw.get("id")
    if response_id is not None and not (
        type(response_id) is str and _RESPONSE_ID.fullmatch(response_id)
    ):
        return None
    try:
        started = raw.get("started_at")
        started = None if started is None else _AWARE_DATETIME.validate_python(started)
        ended = raw.get("ended_at")
        ended = None if ended is None else _AWARE_DATETIME.validate_python(ended)
    except ValidationError:
        return None
    return _PlainDocument(
        values,
        embedded,
        finished,
        started,
        ended,
        raw.get("language"),
        raw.get("distribution_id"),
        raw.get("contact_id"),
        response_id,
    )


def _plain_mapping(mapping: Any) -> bool:
    """Whether `mapping` is a dict with text keys and no NUL in any text it holds: what `_parse`
    accepts for `values` and `embedded_data`."""
    if type(mapping) is not dict:
        return False
    for key, value in mapping.items():
        if type(key) is not str or "\x00" in key:
            return False
        kind = type(value)
        if kind is str:
            if "\x00" in value:
                return False
        elif value is not None and kind not in _SCALARS and _has_nul(value):
            return False
    return True


def _store_batch(
    db: Database,
    batch: list[_Pending],
    result: ImportResult,
    on_stored: Callable[[int, str], None] | None,
    max_reported: int,
) -> None:
    try:
        stored, taken = _insert(db, batch)
    except Exception as exc:
        if len(batch) == 1:
            result.refuse(batch[0][0], [_storage_problem(exc)], max_reported)
            return
        for item in batch:  # find the culprit(s): one row per transaction
            _store_batch(db, [item], result, on_stored, max_reported)
        return
    for position, _, _ in taken:
        result.refuse(
            position,
            [_problem(None, "duplicate_id", "A response with this ResponseId exists already.")],
            max_reported,
        )
    result.stored += len(stored)
    if on_stored:
        for position, values, _ in stored:
            on_stored(position, values["id"])


def _insert(db: Database, batch: list[_Pending]) -> tuple[list[_Pending], list[_Pending]]:
    """Insert a batch in one transaction; returns (stored, refused because the id was taken)."""
    with db.uow() as uow:
        session = uow.session
        given = [values["id"] for _, values, id_given in batch if id_given]
        if given:
            existing = set(session.scalars(select(Response.id).where(Response.id.in_(given))))
            stored, taken, seen = [], [], set()
            for item in batch:
                response_id = item[1]["id"]
                (taken if response_id in existing or response_id in seen else stored).append(item)
                seen.add(response_id)
        else:
            stored, taken = batch, []
        if stored:
            rows = [values for _, values, _ in stored]
            insert_response_rows(session, rows)
            # Most imports start no workflow (only those that include imported responses):
            # one question per batch then saves building a response object per row.
            if uow.ledger.wants_responses(session, [rows[0]["survey_id"]], "import"):
                uow.ledger.record_response_events(uow, rows, "created")
        uow.commit()
    return stored, taken


def _storage_problem(exc: Exception) -> dict[str, Any]:
    if isinstance(exc, CxloopError):
        return _problem(None, exc.code, exc.message)
    if isinstance(exc, IntegrityError):
        return _problem(None, "not_stored", "The response clashes with one stored already.")
    return _problem(None, "not_stored", f"The response could not be stored ({type(exc).__name__}).")


def rows_from_array(items: list[Any]) -> Iterator[SourceRow]:
    """Rows of a JSON array posted to the API; positions are the array indexes."""
    for index, item in enumerate(items):
        yield SourceRow(index, item)


def submit_many(
    db: Database, actor: Actor, survey_id: str, items: list[Any]
) -> tuple[ImportResult, dict[int, str]]:
    """A bulk POST: import a JSON array; returns the result and the id stored per index."""
    if len(items) > MAX_BULK_ITEMS:
        raise InvalidInput(
            f"At most {MAX_BULK_ITEMS:,} responses per request; this one has {len(items):,}. "
            "Split it, or use `cxloop responses import` for large files.",
            code="too_many_items",
        )
    stored: dict[int, str] = {}
    result = import_responses(
        db, actor, survey_id, rows_from_array(items),
        on_stored=lambda index, response_id: stored.__setitem__(index, response_id),
        max_reported=MAX_BULK_ITEMS,
    )  # fmt: skip
    return result, stored


# -- files: CSV (the reference product's layout) and JSON lines -------------------------------


IMPORT_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def import_file(
    db: Database,
    actor: Actor,
    survey_id: str,
    stream: TextIO,
    fmt: str,
    *,
    batch_size: int = IMPORT_BATCH_SIZE,
    on_progress: Callable[[ImportResult], None] | None = None,
) -> ImportResult:
    """Import a CSV (see `domain.response_csv`) or JSON-lines file, reporting rows by line.

    Unknown CSV columns are ignored and named in the result's warnings.
    """
    if fmt not in ("csv", "jsonl"):
        raise InvalidInput(f"Cannot import {fmt!r}: use a .csv or .jsonl file.", code="bad_format")
    with db.reader() as uow:
        content = content_of(get_survey_for(uow.session, survey_id, actor, SurveyAccess.EDIT))
    warnings: list[str] = []
    rows = read_csv(stream, content, warnings) if fmt == "csv" else read_jsonl(stream)
    result = import_responses(
        db, actor, survey_id, rows, batch_size=batch_size, on_progress=on_progress
    )
    result.warnings.extend(warnings)
    return result


def read_jsonl(stream: TextIO) -> Iterator[SourceRow]:
    """One response object per line (blank lines are skipped); positions are line numbers."""
    for line_number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            document = json.loads(line)
        except (ValueError, RecursionError) as exc:
            message = f"This line is not valid JSON: {exc}"[:300]
            yield SourceRow(line_number, None, [_problem(None, "bad_json", message)])
            continue
        yield SourceRow(line_number, document)


def read_csv(stream: TextIO, content: SurveyContent, warnings: list[str]) -> Iterator[SourceRow]:
    """The data rows of a response CSV, each with the line it starts on.

    Header rows: one, or the reference product's three (names, labels, ImportIds).
    """
    reader = csv.reader(stream)
    table = ResponseTable(content)
    rows = _csv_records(reader)
    header: list[tuple[int, list[str]]] = []
    for record in rows:
        header.append(record)
        if len(header) == 3:
            break
    if not header:
        return
    count = header_row_count([cells for _, cells in header if cells is not None])
    row_reader = table.reader([cells for _, cells in header[:count]])
    if row_reader.ignored_columns:
        shown = ", ".join(row_reader.ignored_columns[:20])
        more = (
            f" and {len(row_reader.ignored_columns) - 20} more"
            if len(row_reader.ignored_columns) > 20
            else ""
        )
        warnings.append(f"Columns this survey does not have were ignored: {shown}{more}.")
    for line, cells in itertools.chain(header[count:], rows):
        if cells is None:
            yield SourceRow(line, None, [_problem(None, "bad_csv", "This line is not valid CSV.")])
            continue
        if not any(cell.strip() for cell in cells):
            continue
        document, problems = row_reader.read(cells)
        yield SourceRow(line, document, [p.as_dict() for p in problems])


def _csv_records(reader: Any) -> Iterator[tuple[int, list[str] | None]]:
    """(first line, cells) per record; cells is None for a record the csv module refused."""
    start = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error:
            yield start, None
            start = reader.line_num + 1
            continue
        yield start, cells
        start = reader.line_num + 1


def _utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.astimezone(UTC)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
