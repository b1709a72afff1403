"""Contact imports: a CSV or JSON-lines file read line by line (`domain.contacts_import`),
upserted in chunks, each bad row reported with its line."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import MappingProxyType

from sqlalchemy.exc import IntegrityError

from cxloop.db.directory_models import (
    Directory,
    MailingList,
)
from cxloop.db.uow import Database
from cxloop.domain import contacts_import
from cxloop.errors import CxloopError, InvalidInput, NotFound
from cxloop.services import audit
from cxloop.services.access import Actor
from cxloop.services.directory.contacts import upsert_contact
from cxloop.services.directory.mailing_lists import add_to_mailing_list
from cxloop.services.directory.shared import (
    ContactFields,
    check_name,
    clean_contact_fields,
    directory_for,
    mailing_list_named,
)

IMPORT_CHUNK_SIZE = 500
MAX_REPORTED_PROBLEMS = 1_000
MATCH_ON = ("email", "external_ref")
IMPORT_FORMATS = MappingProxyType({".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"})


@dataclass(frozen=True)
class RowProblem:
    """A row that was not imported: its (first) line and why."""

    line: int
    code: str
    message: str


@dataclass
class ContactImportResult:
    """What an import did: rows read, contacts created and updated, rows refused."""

    total: int = 0
    created: int = 0
    updated: int = 0
    failed: int = 0
    problems: list[RowProblem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    mailing_list_id: str | None = None

    def refuse(self, line: int, code: str, message: str) -> None:
        self.failed += 1
        if len(self.problems) < MAX_REPORTED_PROBLEMS:
            self.problems.append(RowProblem(line, code, message))


def import_contacts(
    db: Database,
    actor: Actor,
    directory_id: str,
    lines: Iterable[str],
    fmt: str,
    *,
    match_on: str = "email",
    mailing_list: str | None = None,
    chunk_size: int = IMPORT_CHUNK_SIZE,
    on_progress: Callable[[ContactImportResult], None] | None = None,
) -> ContactImportResult:
    """Import contacts from CSV or JSON-lines text, read line by line (never all at once).

    Each row is checked on its own; a bad row is reported with its line and reason and the
    others go on. Good rows are upserted (matched by email, or by external reference with
    `match_on="external_ref"`) `chunk_size` to a transaction, and put on `mailing_list` (an id,
    or a name, made when missing). A file whose header cannot be used is refused as a whole
    (InvalidInput) before anything is stored. `on_progress` hears after every chunk.
    """
    if fmt not in ("csv", "jsonl"):
        raise InvalidInput(f"Cannot import {fmt!r}: use CSV or JSON lines.", code="bad_format")
    if match_on not in MATCH_ON:
        raise InvalidInput(
            f"match_on must be one of {', '.join(MATCH_ON)}, not {match_on!r}.",
            code="bad_match_on",
        )
    with db.reader() as uow:
        directory_for(uow.session, actor, directory_id)
    result = ContactImportResult()
    rows = (
        contacts_import.read_csv(lines, result.warnings)
        if fmt == "csv"
        else contacts_import.read_jsonl(lines)
    )
    pending: list[tuple[int, ContactFields]] = []
    try:
        for row in rows:
            if result.total == 0 and mailing_list:  # the header was fine: now make the list
                result.mailing_list_id = _ensure_mailing_list(db, actor, directory_id, mailing_list)
            result.total += 1
            fields = _checked_fields(row, result)
            if fields is None:
                continue
            pending.append((row.line, fields))
            if len(pending) >= chunk_size:
                _store_chunk(db, directory_id, pending, match_on, result)
                pending = []
                if on_progress:
                    on_progress(result)
    except contacts_import.HeaderProblem as exc:
        raise InvalidInput(exc.message, code=exc.code) from None
    if pending:
        _store_chunk(db, directory_id, pending, match_on, result)
    result.problems.sort(key=lambda problem: problem.line)
    if on_progress:
        on_progress(result)
    audit.record_alone(
        db, actor.id, "contacts.import", "directory", directory_id,
        total=result.total, created=result.created, updated=result.updated, failed=result.failed,
    )  # fmt: skip
    return result


def _checked_fields(
    row: contacts_import.ImportRow, result: ContactImportResult
) -> ContactFields | None:
    if row.fields is None:
        problem = row.problems[0] if row.problems else {"code": "bad_row", "message": "?"}
        result.refuse(row.line, problem["code"], "; ".join(p["message"] for p in row.problems))
        return None
    fields = ContactFields(**row.fields)
    try:
        clean_contact_fields(fields)
    except InvalidInput as exc:
        result.refuse(row.line, exc.code, exc.message)
        return None
    return fields


def _ensure_mailing_list(db: Database, actor: Actor, directory_id: str, name_or_id: str) -> str:
    with db.uow() as uow:
        directory = directory_for(uow.session, actor, directory_id)
        found = uow.session.get(MailingList, name_or_id)
        if found is not None and found.directory_id == directory.id:
            return found.id
        name = check_name(name_or_id, "mailing list")
        found = mailing_list_named(uow.session, directory.id, name)
        if found is None:
            found = MailingList(directory_id=directory.id, name=name)
            uow.session.add(found)
            uow.session.flush()
            uow.commit()
        return found.id


def _store_chunk(
    db: Database,
    directory_id: str,
    chunk: list[tuple[int, ContactFields]],
    match_on: str,
    result: ContactImportResult,
) -> None:
    """Upsert a chunk in one transaction; if it fails as a whole (a contact added by someone
    else meanwhile), its rows are retried one per transaction so only the culprit is refused."""
    outcomes: list[tuple[int, bool | InvalidInput]] = []
    try:
        with db.uow() as uow:
            session = uow.session
            directory = session.get(Directory, directory_id)
            if directory is None:
                raise NotFound(
                    f"Directory {directory_id!r} was deleted during the import.",
                    subject="directory",
                )
            mailing_list = (
                session.get(MailingList, result.mailing_list_id) if result.mailing_list_id else None
            )
            for line, fields in chunk:
                try:
                    contact, created = upsert_contact(session, directory, fields, match_on=match_on)
                except InvalidInput as exc:
                    outcomes.append((line, exc))
                    continue
                if mailing_list is not None:
                    add_to_mailing_list(session, directory, mailing_list.id, contact)
                outcomes.append((line, created))
            uow.commit()
    except NotFound:
        raise
    except (CxloopError, IntegrityError) as exc:
        if len(chunk) == 1:
            message = (
                exc.message if isinstance(exc, CxloopError) else "it clashes with a stored contact"
            )
            result.refuse(chunk[0][0], "not_stored", f"The contact was not stored: {message}.")
            return
        for item in chunk:
            _store_chunk(db, directory_id, [item], match_on, result)
        return
    for line, outcome in outcomes:
        if isinstance(outcome, InvalidInput):
            result.refuse(line, outcome.code, outcome.message)
        elif outcome:
            result.created += 1
        else:
            result.updated += 1
