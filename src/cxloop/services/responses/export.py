"""Reading responses out: a page at a time (the API's list), or all of them as a streamed
export (CSV in the reference product's layout, a JSON array, JSON lines)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from cxloop.db.models import RESPONSE_SOURCES, Response
from cxloop.db.uow import Database
from cxloop.domain.response_csv import ResponseTable
from cxloop.errors import InvalidInput
from cxloop.services.access import Actor, SurveyAccess, get_survey_for
from cxloop.services.pagination import Page, after_key, check_limit, keyset, page_from
from cxloop.services.survey_content import content_of

ExportFormat = Literal["csv", "json", "jsonl"]
EXPORT_FORMATS = ("csv", "json", "jsonl")
EXPORT_CHUNK_SIZE = 1_000

# A response document's keys, in the order the API shows them; the dates are written as ISO text.
_DOCUMENT_FIELDS = (
    "id",
    "survey_id",
    "values",
    "embedded_data",
    "started_at",
    "ended_at",
    "duration_s",
    "finished",
    "source",
    "channel",
    "language",
    "distribution_id",
    "contact_id",
    "created_at",
    "updated_at",
)
_DATE_FIELDS = frozenset({"started_at", "ended_at", "created_at", "updated_at"})


def response_document(response: Response | Mapping[str, Any]) -> dict[str, Any]:
    """A response as the API and the JSON export show it: a `Response`, or its row as stored
    (a mapping of its columns: what a submission gives back)."""
    get = response.__getitem__ if isinstance(response, Mapping) else response.__getattribute__
    return {
        name: _iso(get(name)) if name in _DATE_FIELDS else get(name) for name in _DOCUMENT_FIELDS
    }


@dataclass(frozen=True)
class ResponseFilter:
    """Which responses a list or export covers; since/until bound the recorded date."""

    finished: bool | None = None
    source: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def check(self) -> ResponseFilter:
        """The filter, or InvalidInput saying what is wrong with it."""
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
        """`query` narrowed to the responses the filter covers."""
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
    query = keyset(
        filters.apply(select(Response).where(Response.survey_id == survey_id)),
        Response.created_at, Response.id, limit=limit, cursor=cursor, oldest_first=True,
    )  # fmt: skip
    with db.reader() as uow:
        get_survey_for(uow.session, survey_id, actor, SurveyAccess.VIEW)
        rows = list(uow.session.scalars(query))
    return page_from(rows, limit, lambda row: (row.created_at, row.id))


def _chunk(
    session: Session,
    survey_id: str,
    filters: ResponseFilter,
    after: tuple[datetime, str | int] | None,
    limit: int,
) -> list[Response]:
    """Up to `limit` responses after `after`, oldest first (keyset: stable under inserts)."""
    query = (
        select(Response)
        .where(Response.survey_id == survey_id)
        .order_by(Response.created_at, Response.id)
        .limit(limit)
    )
    query = filters.apply(query)
    if after is not None:
        query = query.where(after_key(Response.created_at, Response.id, after, oldest_first=True))
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
    found by keyset, so memory stays flat however many responses there are; each chunk read
    is one piece of text after the first (the CSV's header, or the array's opening).
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


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
