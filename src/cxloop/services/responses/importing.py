"""Bulk import: responses brought in row by row (a file, or a JSON array POSTed to the API).

Each row goes through the same response plan as a submitted response; bad rows are reported
with their position, good rows stored `batch_size` to a transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TextIO

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from cxloop.db.base import utcnow
from cxloop.db.models import Response
from cxloop.db.response_rows import insert_response_rows
from cxloop.db.uow import Database
from cxloop.domain.response_files import (
    IMPORT_FORMATS,
    SourceRow,
    read_csv,
    read_jsonl,
    rows_from_array,
)
from cxloop.errors import CxloopError, InvalidInput
from cxloop.services import audit
from cxloop.services.access import Actor, SurveyAccess, get_survey_for
from cxloop.services.responses.errors import problem
from cxloop.services.responses.plan import ResponsePlan, read_document
from cxloop.services.survey_content import content_for, content_of, survey_ref

__all__ = [
    "IMPORT_FORMATS",
    "ImportResult",
    "RowOutcome",
    "SourceRow",
    "import_file",
    "import_responses",
    "submit_many",
]

MAX_BULK_ITEMS = 10_000
IMPORT_BATCH_SIZE = 500
MAX_REPORTED_ROWS = 1_000


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
        """Count a refused row; its reasons are kept for the first `max_reported`."""
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
        plan = ResponsePlan(survey_id, content_for(uow.session, survey), survey.language)
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
    audit.record_alone(
        db, actor.id, "responses.import", "survey", survey_id,
        total=result.total, stored=result.stored, failed=result.failed,
    )  # fmt: skip
    return result


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


# A row waiting to be stored: its position, its column values, and whether its ResponseId came
# with it (only such ids can clash with stored responses; new ones are 89 random bits).
_Pending = tuple[int, dict[str, Any], bool]


def _checked_row(
    plan: ResponsePlan, row: SourceRow
) -> tuple[dict[str, Any] | None, list[dict[str, Any]], bool]:
    """(column values, [], whether its ResponseId came with it) for a good row; (None, its
    problems, False) for a bad one."""
    if row.problems:
        return None, row.problems, False
    try:
        doc = read_document(row.document)
    except InvalidInput as exc:
        return None, exc.details, False
    problems = plan.problems(doc)
    if problems:
        return None, problems, False
    values = plan.row(doc, source="import", now=utcnow(), response_id=doc.id)
    return values, [], doc.id is not None


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
            [problem(None, "duplicate_id", "A response with this ResponseId exists already.")],
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
        return problem(None, exc.code, exc.message)
    if isinstance(exc, IntegrityError):
        return problem(None, "not_stored", "The response clashes with one stored already.")
    return problem(None, "not_stored", f"The response could not be stored ({type(exc).__name__}).")
