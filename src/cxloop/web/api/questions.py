"""/api/v1/surveys/{id}/content, /questions and /import: a survey's questions and embedded data.

The content is one document (JSON, or YAML with `?format=yaml` / a YAML content type). Every
reply carries the content version in `ETag`; send it back in `If-Match` to refuse a change when
someone else changed the content in between.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, File, Header, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from pydantic import ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from cxloop.domain.survey_content import MAX_DOCUMENT_CHARS, SurveyContent, SurveyContentError
from cxloop.errors import InvalidInput, Unreadable
from cxloop.services import survey_content
from cxloop.services.survey_content import ContentState, question_document
from cxloop.web.api.schemas import Reply, if_match_number
from cxloop.web.deps import ApiActor, Db

router = APIRouter(prefix="/api/v1/surveys/{survey_id}", tags=["survey content"])

YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
QuestionBody = Annotated[dict[str, Any], Body(description="A question of the content document.")]


class MalformedBody(Unreadable):
    code = "malformed_body"


class QuestionOut(Reply):
    """One question of the content document; the other fields depend on its `type`
    (docs/survey-content.md)."""

    model_config = ConfigDict(extra="allow")

    qid: str
    type: str


class ContentOut(Reply):
    """The content document (docs/survey-content.md); defaults are left out."""

    model_config = ConfigDict(extra="allow")

    format_version: int
    questions: list[QuestionOut] = Field(default_factory=list)


class QuestionsOut(Reply):
    version: int = Field(description="The content version, also in `ETag`.")
    items: list[QuestionOut]


class SkippedOut(Reply):
    element: str
    kind: str
    reason: str


class ImportReportOut(Reply):
    """What an import did: counts per question type, what was left out and why."""

    format: Literal["qsf", "json", "yaml"]
    behaviour_changes: list[str] = Field(
        default_factory=list, description="QSF: what makes the survey behave differently."
    )
    survey_name: str | None = Field(default=None, description="QSF: the exported survey's name.")
    source_survey_id: str | None = Field(default=None, description="QSF: its survey id.")
    imported: dict[str, int] = Field(description="Questions imported, per type.")
    imported_total: int
    skipped: list[SkippedOut]
    warnings: list[str]
    embedded_data_fields: int
    embedded_data_from_link: list[str]
    pages: int
    content_version: int


# The content as YAML, when asked for (`?format=yaml` or a YAML body): the same document.
_CONTENT_REPLIES: Mapping[int | str, dict[str, Any]] = MappingProxyType(
    {
        200: {
            "content": {"application/yaml": {"schema": {"$ref": "#/components/schemas/ContentOut"}}}
        }
    }
)


def _version(if_match: str | None) -> int | None:
    return if_match_number(if_match, "a content version", max_digits=12)


def _etag(version: int) -> dict[str, str]:
    return {"ETag": f'"{version}"'}


def _content_reply(state: ContentState, fmt: str = "json") -> Response:
    if fmt == "yaml":
        return Response(
            state.content.to_yaml(), media_type="application/yaml", headers=_etag(state.version)
        )
    return JSONResponse(state.content.to_document(), headers=_etag(state.version))


@router.get(
    "/content",
    response_model=ContentOut,
    responses=dict(_CONTENT_REPLIES),
    summary="The content document",
)
def get_content(
    survey_id: str,
    actor: ApiActor,
    db: Db,
    format: Annotated[Literal["json", "yaml"], Query()] = "json",
) -> Response:
    return _content_reply(survey_content.get_content(db, actor, survey_id), format)


@router.put(
    "/content",
    response_model=ContentOut,
    responses=dict(_CONTENT_REPLIES),
    summary="Replace the content document (JSON or YAML)",
)
async def put_content(
    request: Request,
    survey_id: str,
    actor: ApiActor,
    db: Db,
    if_match: Annotated[str | None, Header()] = None,
) -> Response:
    expected = _version(if_match)
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    document = _parse_body(await request.body(), is_yaml=media_type in YAML_TYPES)
    state = await run_in_threadpool(
        survey_content.put_content, db, actor, survey_id, document, expected_version=expected
    )
    return _content_reply(state, "yaml" if media_type in YAML_TYPES else "json")


def _parse_body(raw: bytes, *, is_yaml: bool) -> Any:
    if len(raw) > MAX_DOCUMENT_CHARS:
        raise InvalidInput(
            f"The document is larger than {MAX_DOCUMENT_CHARS:,} bytes.", code="too_large"
        )
    if not is_yaml:
        try:
            return json.loads(raw)
        except (ValueError, RecursionError):
            raise MalformedBody(
                "The request body is not valid JSON.", code="malformed_json"
            ) from None
    try:
        # The domain's YAML reader (safe, no aliases); the document is checked again on save.
        return SurveyContent.from_yaml(raw).to_document()
    except SurveyContentError as exc:
        first = exc.problems[0].message if exc.problems else ""
        if first.startswith("not valid YAML"):
            raise MalformedBody(f"The request body is {first}.", code="malformed_yaml") from None
        raise survey_content.content_error(exc) from None


@router.get("/questions", response_model=QuestionsOut, summary="The questions, in order")
def list_questions(survey_id: str, actor: ApiActor, db: Db) -> JSONResponse:
    state = survey_content.get_content(db, actor, survey_id)
    items = [question_document(q) for q in state.content.questions]
    return JSONResponse({"version": state.version, "items": items}, headers=_etag(state.version))


@router.post("/questions", status_code=201, response_model=QuestionOut, summary="Add a question")
def add_question(
    survey_id: str,
    body: QuestionBody,
    actor: ApiActor,
    db: Db,
    before: Annotated[
        str | None, Query(max_length=20, description="Insert before this QID")
    ] = None,
    if_match: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    question, state = survey_content.add_question(
        db, actor, survey_id, body, before=before, expected_version=_version(if_match)
    )
    return JSONResponse(question_document(question), 201, headers=_etag(state.version))


@router.get("/questions/{qid}", response_model=QuestionOut, summary="One question")
def get_question(survey_id: str, qid: str, actor: ApiActor, db: Db) -> JSONResponse:
    question, version = survey_content.get_question(db, actor, survey_id, qid)
    return JSONResponse(question_document(question), headers=_etag(version))


@router.put("/questions/{qid}", response_model=QuestionOut, summary="Replace a question")
def replace_question(
    survey_id: str,
    qid: str,
    body: QuestionBody,
    actor: ApiActor,
    db: Db,
    if_match: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    question, state = survey_content.replace_question(
        db, actor, survey_id, qid, body, expected_version=_version(if_match)
    )
    return JSONResponse(question_document(question), headers=_etag(state.version))


@router.delete("/questions/{qid}", status_code=204, summary="Delete a question")
def delete_question(
    survey_id: str,
    qid: str,
    actor: ApiActor,
    db: Db,
    if_match: Annotated[str | None, Header()] = None,
) -> Response:
    state = survey_content.delete_question(
        db, actor, survey_id, qid, expected_version=_version(if_match)
    )
    return Response(status_code=204, headers=_etag(state.version))


@router.post(
    "/import",
    response_model=ImportReportOut,
    summary="Replace the content with a file: .qsf, .json or .yaml",
)
async def import_content(
    survey_id: str,
    actor: ApiActor,
    db: Db,
    file: Annotated[UploadFile, File(description="A .qsf export, or a .json/.yaml document")],
) -> JSONResponse:
    data = await file.read()
    state, report = await run_in_threadpool(
        survey_content.import_content, db, actor, survey_id, file.filename or "", data
    )
    return JSONResponse(report, headers=_etag(state.version))
