"""/api/v1/surveys/{id}/responses: submit (one, or a bulk array), read, list, update, delete,
and export (CSV, JSON, JSON lines) streamed.

Reading needs the viewer role, writing the editor role. A refused response is a 422 whose
details list every problem as {qid, code, message, field}.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from datetime import datetime
from types import MappingProxyType
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Header, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from cxloop.bootstrap import Container
from cxloop.errors import InvalidInput
from cxloop.services import idempotency, responses, users
from cxloop.services.access import Actor
from cxloop.services.responses import ResponseFilter, response_document
from cxloop.web.api.schemas import OwnMediaType
from cxloop.web.deps import ApiActor, Db, api_actor, get_container, remembered_api_actor

router = APIRouter(prefix="/api/v1/surveys/{survey_id}/responses", tags=["responses"])

SourceParam = Literal["web", "api", "import"]
_MEDIA_TYPES = MappingProxyType(
    {
        "csv": "text/csv; charset=utf-8",
        "json": "application/json",
        "jsonl": "application/x-ndjson",
    }
)


class ResponseOut(BaseModel):
    """A stored response."""

    id: str
    survey_id: str
    values: dict[str, Any]
    embedded_data: dict[str, Any]
    started_at: datetime
    ended_at: datetime | None
    duration_s: int | None
    finished: bool
    source: str
    channel: str = Field(description="anonymous_link, personal_link, signed_link, api or import")
    language: str
    distribution_id: str | None
    contact_id: str | None
    created_at: datetime
    updated_at: datetime


class BulkItemOut(BaseModel):
    """What became of one item of a bulk submission (`index`: its place in the array)."""

    index: int
    status: Literal["stored", "refused"]
    id: str | None = Field(default=None, description="The stored response's id")
    problems: list[dict[str, Any]] | None = Field(
        default=None, description="Why it was refused: {qid, code, message, field} each"
    )


class BulkOut(BaseModel):
    """The reply to a bulk submission (a JSON array)."""

    stored: int
    refused: int
    results: list[BulkItemOut]


class ResponsePage(BaseModel):
    items: list[ResponseOut]
    next_cursor: str | None


def _filters(
    finished: bool | None,
    source: str | None,
    since: datetime | None,
    until: datetime | None,
) -> ResponseFilter:
    return ResponseFilter(finished=finished, source=source, since=since, until=until)


Finished = Annotated[bool | None, Query(description="Only finished (true) or incomplete (false)")]
Since = Annotated[datetime | None, Query(description="Recorded at or after (ISO 8601 with zone)")]
Until = Annotated[datetime | None, Query(description="Recorded before (ISO 8601 with zone)")]


class SubmitRoute(APIRoute):
    """The route of `POST .../responses`: its busiest request answered without FastAPI's
    request handling, every other one through it, as declared.

    The busiest request is one response as a JSON object, without an `id` or an
    Idempotency-Key: the intake stores it with whatever else arrived meanwhile (group
    commit). For it, FastAPI's handling (parsing the Content-Type, solving the endpoint's
    parameters and dependencies, its exit stacks) made two-fifths of the request path's Python
    calls (docs/performance.md). The short way does what that handling would
    have done for such a request, in the same order: read and parse the body, authenticate
    (`remembered_api_actor`, whose refusals pass to the same error handlers; the token's
    revocation generation is compared in the intake's transaction, and a token remembered
    under another one is checked in full by `api_actor`), call the endpoint's own code.
    Anything else (another content type, a body that is not a JSON object, an array, a key,
    an id) goes the declared way, which reads the body already read.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        declared = super().get_route_handler()

        async def handle(request: Request) -> Response:
            payload = await _plain_submission(request)
            if payload is None:
                return await declared(request)
            container = get_container(request)
            survey_id = request.path_params["survey_id"]
            actor, generation = await remembered_api_actor(request)
            try:
                return await _submit_plain(
                    container, actor, survey_id, payload, token_generation=generation
                )
            except users.TokenCheckDue:  # a token was revoked since: is it this one?
                actor = await api_actor(request)
                return await _submit_plain(container, actor, survey_id, payload)

        return handle


async def _plain_submission(request: Request) -> dict[str, Any] | None:
    """The request's response document if it is the busiest kind of request (see
    `SubmitRoute`); None for any other."""
    headers = request.headers
    if headers.get("content-type") != "application/json" or idempotency.KEY_HEADER in headers:
        return None
    try:
        body = await request.body()
    except HTTPException:  # the body's size or read timeout: FastAPI passes these on as well
        raise
    except Exception:
        return None  # the declared way reads it again and answers as FastAPI does
    if not body:
        return None
    try:
        payload = json.loads(body)
    except Exception:  # not JSON, not UTF-8, nested too deep: the declared way refuses it
        return None
    if not isinstance(payload, dict) or idempotency.is_retry_safe(payload, None):
        return None
    return payload


async def _submit_plain(
    container: Container,
    actor: Actor,
    survey_id: str,
    payload: dict[str, Any],
    *,
    token_generation: int | None = None,
) -> JSONResponse:
    """Store one response without a key or an id: no trip to a thread, the intake stores it
    with whatever else arrived meanwhile (group commit)."""
    submitted = container.response_intake.submit(
        actor, survey_id, payload, token_generation=token_generation
    )
    stored = await asyncio.wrap_future(submitted)
    return JSONResponse(response_document(stored), status_code=201)


async def create_response(
    survey_id: str,
    actor: ApiActor,
    request: Request,
    payload: Annotated[Any, Body(description="A response object, or an array of them")],
    idempotency_key: Annotated[
        str | None,
        Header(
            alias=idempotency.KEY_HEADER,
            description="Makes a retry safe: a request repeated with the same key (and the "
            "same body) is answered with the stored response, marked `Idempotent-Replayed: "
            "true`, and stores nothing again. A body's `id` (a ResponseID) does the same.",
        ),
    ] = None,
) -> JSONResponse:
    # The container from the request, not as three more dependencies: FastAPI resolves each
    # dependency anew on every request, and this is the busiest endpoint (docs/performance.md).
    container = get_container(request)
    db, intake = container.db, container.response_intake
    key = idempotency.check_key(idempotency_key)
    if isinstance(payload, list):
        if key is not None:
            raise InvalidInput(
                "An Idempotency-Key stands for one response: for an array, give each item "
                "its own `id` instead.",
                code="invalid_idempotency_key",
            )
        return await run_in_threadpool(_bulk, db, actor, survey_id, payload)
    if not idempotency.is_retry_safe(payload, key):
        return await _submit_plain(container, actor, survey_id, payload)
    ttl_s = container.settings.idempotency_key_ttl_s
    claim = await run_in_threadpool(
        idempotency.begin, db, actor, survey_id, payload, key, ttl_s=ttl_s
    )
    if isinstance(claim, idempotency.Replay):
        return _replayed(claim)
    try:
        response = await asyncio.wrap_future(intake.submit(actor, survey_id, claim.document))
    except Exception as exc:
        replay = await run_in_threadpool(
            idempotency.after_failure, db, actor, survey_id, claim, exc
        )
        return _replayed(replay)
    if claim.key is not None:
        await run_in_threadpool(idempotency.finish, db, actor, survey_id, claim, response)
    return JSONResponse(response_document(response), status_code=201)


# Added, not decorated: the busiest endpoint has a route class of its own (SubmitRoute).
router.add_api_route(
    "",
    create_response,
    methods=["POST"],
    status_code=201,
    summary="Submit a response, or a JSON array of them (bulk)",
    responses={
        201: {
            "model": ResponseOut | BulkOut,
            "description": "Stored: the response, or for an array, the result of every item",
        },
        207: {
            "model": BulkOut,
            "description": "Bulk: some items were stored, some refused (per-item results)",
        },
    },
    route_class_override=SubmitRoute,
)


def _replayed(replay: idempotency.Replay) -> JSONResponse:
    return JSONResponse(
        replay.body, status_code=replay.status_code, headers={idempotency.REPLAY_HEADER: "true"}
    )


def _bulk(db: Any, actor: Any, survey_id: str, items: list[Any]) -> JSONResponse:
    if not items:
        raise InvalidInput("The array is empty: send at least one response.", code="empty")
    result, stored = responses.submit_many(db, actor, survey_id, items)
    refused = {row.position: row.problems for row in result.bad_rows}
    results = [
        {"index": index, "status": "stored", "id": stored[index]}
        if index in stored
        else {"index": index, "status": "refused", "problems": refused.get(index, [])}
        for index in range(len(items))
    ]
    body = {"stored": result.stored, "refused": result.failed, "results": results}
    return JSONResponse(body, status_code=201 if result.failed == 0 else 207)


@router.get("", response_model=ResponsePage, summary="List responses, oldest first")
def list_responses(
    survey_id: str,
    actor: ApiActor,
    db: Db,
    finished: Finished = None,
    source: SourceParam | None = None,
    since: Since = None,
    until: Until = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> JSONResponse:
    page = responses.list_responses(
        db, actor, survey_id, filters=_filters(finished, source, since, until),
        limit=limit, cursor=cursor,
    )  # fmt: skip
    return JSONResponse(
        {"items": [response_document(r) for r in page.items], "next_cursor": page.next_cursor}
    )


@router.get(
    "/export",
    response_class=OwnMediaType,
    responses={
        200: {
            "description": "The responses, in the format asked for",
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/json": {
                    "schema": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/ResponseOut"},
                    }
                },
                "application/x-ndjson": {
                    "schema": {"type": "string", "description": "One response object a line"}
                },
            },
        }
    },
    summary="Export responses as CSV, a JSON array or JSON lines (streamed)",
)
def export_responses(
    survey_id: str,
    actor: ApiActor,
    db: Db,
    format: Literal["csv", "json", "jsonl"] = "csv",
    finished: Finished = None,
    source: SourceParam | None = None,
    since: Since = None,
    until: Until = None,
) -> StreamingResponse:
    chunks = responses.export_responses(
        db, actor, survey_id, format, filters=_filters(finished, source, since, until)
    )
    filename = f"{survey_id}-responses.{format}"
    return StreamingResponse(
        chunks,
        media_type=_MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get("/{response_id}", response_model=ResponseOut, summary="One response")
def get_response(survey_id: str, response_id: str, actor: ApiActor, db: Db) -> JSONResponse:
    return JSONResponse(
        response_document(responses.get_response(db, actor, survey_id, response_id))
    )


@router.patch(
    "/{response_id}",
    response_model=ResponseOut,
    summary="Change a response: values and embedded_data are merged (null removes a key)",
)
def update_response(
    survey_id: str,
    response_id: str,
    actor: ApiActor,
    db: Db,
    changes: Annotated[dict[str, Any], Body()],
) -> JSONResponse:
    response = responses.update_response(db, actor, survey_id, response_id, changes)
    return JSONResponse(response_document(response))


@router.delete("/{response_id}", status_code=204, summary="Delete a response")
def delete_response(survey_id: str, response_id: str, actor: ApiActor, db: Db) -> Response:
    responses.delete_response(db, actor, survey_id, response_id)
    return Response(status_code=204)
