"""Use cases for a survey's content: the whole document, single questions, and imports from files.

The content is one `SurveyContent` document stored on the survey with a version number that goes
up by one on every change. Every change is validated as a whole, so a question cannot be
deleted while another's display logic still refers to it; the reply then says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePath
from types import MappingProxyType
from typing import Any

from sqlalchemy import and_, bindparam, select
from sqlalchemy.orm import Session, object_session

from cxloop.db.models import Survey, SurveyCollaborator
from cxloop.db.uow import Database, core_connection
from cxloop.domain.qsf import QsfImportError, import_qsf
from cxloop.domain.survey_content import (
    QUESTION_ADAPTER,
    Question,
    SurveyContent,
    SurveyContentError,
)
from cxloop.errors import Conflict, InvalidInput, NotFound
from cxloop.ledger import ledger_of
from cxloop.services import audit
from cxloop.services.access import Actor, SurveyAccess, get_survey_for

CONTENT_FORMATS = MappingProxyType(
    {".json": "json", ".yaml": "yaml", ".yml": "yaml", ".qsf": "qsf"}
)
_QID_NUMBER = re.compile(r"^QID([1-9][0-9]{0,8})$")
_EMPTY = SurveyContent()


@dataclass(frozen=True)
class ContentState:
    """A survey's content as stored, with its version (for If-Match and caches)."""

    survey_id: str
    version: int
    content: SurveyContent


@dataclass(frozen=True)
class ContentFile:
    """A content document read from a file, what the import did, and a name for a new survey."""

    content: SurveyContent
    report: dict[str, Any]
    suggested_name: str


# -- reading content (cached: parsing a large document on every response would dominate) -----


def content_of(survey: Survey) -> SurveyContent:
    """The survey's parsed content. Call it while the survey's session is open: on a cache miss
    the (deferred) document is loaded. Parsed once per version, in the ledger's cache (the one
    owner of parsed survey content)."""
    session = object_session(survey)
    if session is None:  # a survey made in memory, never stored: nothing to cache by
        return (
            SurveyContent.model_validate(survey.content, strict=True) if survey.content else _EMPTY
        )
    return ledger_of(session).contents.of(survey) or _EMPTY


@dataclass(frozen=True)
class SurveyRef:
    """What answering a survey needs to know of it, read in one light query (the hot path of
    every response: loading the whole survey with its owner and collaborators costs more than
    storing the response)."""

    id: str
    name: str
    status: str
    language: str
    owner_id: str
    content_version: int
    anonymous_link: bool = True


_REF_COLUMNS = (
    Survey.id, Survey.name, Survey.status, Survey.language, Survey.owner_id,
    Survey.content_version, Survey.anonymous_link,
)  # fmt: skip
# Built once: constructing a statement costs more than running it on this path.
_REF_FOR_RESPONDENT = select(*_REF_COLUMNS).where(Survey.id == bindparam("survey_id"))
_REF_FOR_ACTOR = (
    select(*_REF_COLUMNS, SurveyCollaborator.role)
    .outerjoin(
        SurveyCollaborator,
        and_(
            SurveyCollaborator.survey_id == Survey.id,
            SurveyCollaborator.user_id == bindparam("actor_id"),
        ),
    )
    .where(Survey.id == bindparam("survey_id"))
)
_CONTENT = select(Survey.content).where(Survey.id == bindparam("survey_id"))


def survey_ref(
    session: Session, survey_id: str, actor: Actor | None, needed: SurveyAccess
) -> SurveyRef:
    """The survey if `actor` has `needed` access (None: a respondent, who needs no access).

    Refuses as `access.get_survey_for` does: NotFound without any access, Forbidden with too
    little.
    """
    connection = core_connection(session)  # half this read's CPU went to the session's part
    if actor is None:
        row = connection.execute(_REF_FOR_RESPONDENT, {"survey_id": survey_id}).first()
        if row is None:
            raise NotFound(f"No survey {survey_id!r}.", code="survey_not_found")
        return SurveyRef(*row)
    params = {"survey_id": survey_id, "actor_id": actor.id}
    row = connection.execute(_REF_FOR_ACTOR, params).first()
    if row is None:
        raise NotFound(f"No survey {survey_id!r}.", subject="survey")
    *columns, role = row
    if actor.is_admin or columns[4] == actor.id:
        granted = SurveyAccess.OWN
    else:
        granted = {"editor": SurveyAccess.EDIT, "viewer": SurveyAccess.VIEW}.get(
            role, SurveyAccess.NONE
        )
    if granted == SurveyAccess.NONE:
        raise NotFound(f"No survey {survey_id!r}.", subject="survey")
    if granted < needed:
        get_survey_for(session, survey_id, actor, needed)  # raises, with who to ask
    return SurveyRef(*columns)


def content_for(session: Session, survey: SurveyRef) -> SurveyContent:
    """The parsed content of a survey read with `survey_ref` (cached by version)."""
    contents = ledger_of(session).contents
    content = contents.get(survey.id, survey.content_version)
    if content is not None:
        return content
    document = session.scalar(_CONTENT, {"survey_id": survey.id})
    if not document:
        return _EMPTY
    return contents.parse(survey.id, survey.content_version, document)


def get_content(db: Database, actor: Actor, survey_id: str) -> ContentState:
    """The survey's content (viewers and up)."""
    with db.reader() as uow:
        survey = get_survey_for(uow.session, survey_id, actor, SurveyAccess.VIEW)
        return ContentState(survey.id, survey.content_version, content_of(survey))


def get_question(db: Database, actor: Actor, survey_id: str, qid: str) -> tuple[Question, int]:
    """One question and the content version it belongs to."""
    state = get_content(db, actor, survey_id)
    return _find(state.content, qid, survey_id), state.version


# -- changing content ------------------------------------------------------------------------


def put_content(
    db: Database,
    actor: Actor,
    survey_id: str,
    document: Any,
    *,
    expected_version: int | None = None,
) -> ContentState:
    """Replace the whole content with `document` (owner and editors).

    With `expected_version`, refuse (Conflict) when someone changed the content in the meantime.
    """
    _check_editable(db, survey_id, actor)
    content = parse_document(document)
    with db.uow() as uow:
        survey = _editable(uow.session, survey_id, actor, expected_version)
        state = _store(uow.session, survey, actor, content, "survey.content.replace")
        uow.commit()
        return state


def add_question(
    db: Database,
    actor: Actor,
    survey_id: str,
    document: Any,
    *,
    before: str | None = None,
    expected_version: int | None = None,
) -> tuple[Question, ContentState]:
    """Add a question at the end, or before the question `before`.

    Without a `qid` the next free one is given; without a `page` the question joins the page of
    its neighbour (the last question's page at the end, or the page of `before`).
    """
    if not isinstance(document, dict):
        raise InvalidInput("A question must be an object.", code="invalid_content")
    with db.uow() as uow:
        survey = _editable(uow.session, survey_id, actor, expected_version)
        current = content_of(survey)
        body = current.to_document()
        questions: list[dict[str, Any]] = body.setdefault("questions", [])
        new = dict(document)
        new.setdefault("qid", _next_qid(current))
        if before is None:
            index = len(questions)
            neighbour = current.questions[-1] if current.questions else None
        else:
            index = next((i for i, q in enumerate(current.questions) if q.qid == before), -1)
            if index < 0:
                raise NotFound(
                    f"No question {before!r} in survey {survey_id!r}.", subject="question"
                )
            neighbour = current.questions[index]
        if neighbour is not None:
            new.setdefault("page", neighbour.page)
        questions.insert(index, new)
        content = parse_document(body)
        state = _store(uow.session, survey, actor, content, "survey.question.add", qid=new["qid"])
        uow.commit()
        return _find(state.content, new["qid"], survey_id), state


def replace_question(
    db: Database,
    actor: Actor,
    survey_id: str,
    qid: str,
    document: Any,
    *,
    expected_version: int | None = None,
) -> tuple[Question, ContentState]:
    """Replace one question; its QID stays (a `qid` in the document must be the same)."""
    if not isinstance(document, dict):
        raise InvalidInput("A question must be an object.", code="invalid_content")
    if document.get("qid", qid) != qid:
        raise InvalidInput(
            f"The question's qid ({document.get('qid')!r}) differs from the address ({qid}); "
            "a QID cannot be changed, delete the question and add a new one instead.",
            code="qid_mismatch",
        )
    with db.uow() as uow:
        survey = _editable(uow.session, survey_id, actor, expected_version)
        current = content_of(survey)
        _find(current, qid, survey_id)
        body = current.to_document()
        body["questions"] = [
            {"qid": qid, **document} if q["qid"] == qid else q for q in body["questions"]
        ]
        content = parse_document(body)
        state = _store(uow.session, survey, actor, content, "survey.question.replace", qid=qid)
        uow.commit()
        return _find(state.content, qid, survey_id), state


def delete_question(
    db: Database,
    actor: Actor,
    survey_id: str,
    qid: str,
    *,
    expected_version: int | None = None,
) -> ContentState:
    """Delete one question (refused while other questions' display logic uses it)."""
    with db.uow() as uow:
        survey = _editable(uow.session, survey_id, actor, expected_version)
        current = content_of(survey)
        _find(current, qid, survey_id)
        body = current.to_document()
        body["questions"] = [q for q in body["questions"] if q["qid"] != qid]
        content = parse_document(body)
        state = _store(uow.session, survey, actor, content, "survey.question.delete", qid=qid)
        uow.commit()
        return state


# -- files: JSON, YAML, QSF ------------------------------------------------------------------


def read_content_file(filename: str, data: bytes) -> ContentFile:
    """Read a content document from a file's bytes; the extension says the format.

    `.json` and `.yaml`/`.yml` hold cxloop's own document; `.qsf` is the reference product's
    export. Raises InvalidInput with every problem found.
    """
    suffix = PurePath(filename or "").suffix.lower()
    kind = CONTENT_FORMATS.get(suffix)
    if kind is None:
        raise InvalidInput(
            f"Cannot tell the format of {filename!r}: name it .json, .yaml, .yml or .qsf.",
            code="unknown_format",
        )
    stem = PurePath(filename).stem.strip() or "Imported survey"
    if kind == "qsf":
        try:
            imported = import_qsf(data)
        except QsfImportError as exc:
            raise InvalidInput(
                f"The QSF file cannot be imported: {exc}", code="invalid_qsf"
            ) from None
        report = imported.report
        return ContentFile(
            content=imported.content,
            # What changes the survey's behaviour first, then counts, then the details.
            report={
                "behaviour_changes": list(report.behaviour_changes),
                "format": "qsf",
                "survey_name": report.survey_name,
                "source_survey_id": report.source_survey_id,
                "imported": dict(report.imported),
                "imported_total": report.imported_total,
                "skipped": [
                    {"element": s.element, "kind": s.kind, "reason": s.reason}
                    for s in report.skipped
                ],
                "warnings": list(report.warnings),
                "embedded_data_fields": report.embedded_data_fields,
                "embedded_data_from_link": list(report.embedded_data_from_link),
                "pages": report.pages,
            },
            suggested_name=report.survey_name.strip() or stem,
        )
    try:
        content = SurveyContent.from_json(data) if kind == "json" else SurveyContent.from_yaml(data)
    except SurveyContentError as exc:
        raise content_error(exc) from None
    return ContentFile(content=content, report=summarize(content, kind), suggested_name=stem)


def import_content(
    db: Database, actor: Actor, survey_id: str, filename: str, data: bytes
) -> tuple[ContentState, dict[str, Any]]:
    """Replace a survey's content with a file's (JSON, YAML or QSF); returns the import report."""
    _check_editable(db, survey_id, actor)
    read = read_content_file(filename, data)
    with db.uow() as uow:
        survey = _editable(uow.session, survey_id, actor, None)
        state = _store(
            uow.session, survey, actor, read.content, "survey.content.import",
            file=PurePath(filename).name[:200], format=read.report["format"],
        )  # fmt: skip
        uow.commit()
    return state, read.report | {"content_version": state.version}


def create_survey_from_file(
    db: Database, owner: Actor, filename: str, data: bytes, *, name: str | None = None
) -> tuple[Survey, dict[str, Any]]:
    """A new draft survey owned by `owner` with the content of a file; returns it and the report."""
    read = read_content_file(filename, data)
    survey_name = (name or read.suggested_name).strip()[:200] or "Imported survey"
    with db.uow() as uow:
        survey = Survey(name=survey_name, owner_id=owner.id)
        uow.session.add(survey)
        uow.session.flush()
        audit.record(
            uow.session, owner.id, "survey.create", "survey", survey.id,
            name=survey.name, file=PurePath(filename).name[:200],
        )  # fmt: skip
        _store(uow.session, survey, owner, read.content, "survey.content.import")
        uow.commit()
        survey_id = survey.id
    with db.reader() as uow:
        stored = uow.session.get(Survey, survey_id)
        assert stored is not None
    return stored, read.report | {"survey_id": survey_id}


def summarize(content: SurveyContent, kind: str = "json") -> dict[str, Any]:
    """An import report for cxloop's own documents: counts per question type, nothing skipped."""
    counts: dict[str, int] = {}
    for question in content.questions:
        counts[question.type] = counts.get(question.type, 0) + 1
    return {
        "format": kind,
        "imported": counts,
        "imported_total": len(content.questions),
        "skipped": [],
        "warnings": [],
        "embedded_data_fields": len(content.embedded_data),
        "embedded_data_from_link": [f.name for f in content.embedded_data if f.source == "query"],
        "pages": len(content.page_numbers()),
    }


# -- documents -------------------------------------------------------------------------------


def parse_document(document: Any) -> SurveyContent:
    """Content from a document, or InvalidInput listing every problem as {path, message}."""
    try:
        return SurveyContent.from_document(document)
    except SurveyContentError as exc:
        raise content_error(exc) from None


def question_document(question: Question) -> dict[str, Any]:
    """One question as it appears in the content document (defaults left out)."""
    body = QUESTION_ADAPTER.dump_python(question, mode="json", exclude_defaults=True)
    return {"qid": question.qid, "type": question.type, **body}


def _store(
    session: Session,
    survey: Survey,
    actor: Actor,
    content: SurveyContent,
    action: str,
    **details: Any,
) -> ContentState:
    survey.content = content.to_document()
    survey.content_version = (survey.content_version or 0) + 1
    ledger_of(session).contents.put(survey.id, survey.content_version, content)
    audit.record(
        session, actor.id, action, "survey", survey.id,
        version=survey.content_version, questions=len(content.questions), **details,
    )  # fmt: skip
    return ContentState(survey.id, survey.content_version, content)


def _check_editable(db: Database, survey_id: str, actor: Actor) -> None:
    # Before reading what was sent: someone without access learns nothing from its problems,
    # and a large file is parsed outside the write transaction.
    with db.reader() as uow:
        get_survey_for(uow.session, survey_id, actor, SurveyAccess.EDIT)


def _editable(
    session: Session, survey_id: str, actor: Actor, expected_version: int | None
) -> Survey:
    survey = get_survey_for(session, survey_id, actor, SurveyAccess.EDIT)
    if expected_version is not None and expected_version != survey.content_version:
        raise Conflict(
            f"The content changed since you read it (you have version {expected_version}, it is "
            f"now {survey.content_version}): read it again and redo your change.",
            code="content_changed",
        )
    return survey


def _find(content: SurveyContent, qid: str, survey_id: str) -> Question:
    question = content.question(qid)
    if question is None:
        raise NotFound(f"No question {qid!r} in survey {survey_id!r}.", subject="question")
    return question


def _next_qid(content: SurveyContent) -> str:
    numbers = [int(m[1]) for q in content.questions if (m := _QID_NUMBER.match(q.qid))]
    return f"QID{max(numbers, default=0) + 1}"


def content_error(exc: SurveyContentError) -> InvalidInput:
    """A content document's problems as InvalidInput listing each as {path, message}."""
    problems = [{"path": p.path, "message": p.message} for p in exc.problems]
    message = str(exc)
    return InvalidInput(message[:1].upper() + message[1:], code="invalid_content", details=problems)
