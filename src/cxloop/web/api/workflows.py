"""/api/v1/surveys/{survey_id}/workflows: workflow documents, their revisions, export and apply.

A body is the workflow document itself (docs/workflows.md), as JSON or as YAML (send a YAML
content type). Replies that describe one workflow carry its revision in `ETag`; send it back in
`If-Match` with PUT to refuse the save if someone else saved in between. Saves check the
Salesforce tasks against their orgs: `warnings` say what is wrong and how to fix it, and
`?strict=true` refuses the save (422) while there are any.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from cxloop.bootstrap import Container
from cxloop.db.workflow_models import Workflow, WorkflowRevision
from cxloop.engine.dry_run import dry_run
from cxloop.services import workflows
from cxloop.services.access import Actor
from cxloop.services.task_checks import SaveChecks
from cxloop.services.workflows import WorkflowView
from cxloop.web.api.schemas import OwnMediaType, Reply, RequestBody, if_match_number, reply_model
from cxloop.web.deps import ApiActor, AppContainer, Db
from cxloop.web.errors import UnsupportedMediaType

router = APIRouter(prefix="/api/v1/surveys/{survey_id}/workflows", tags=["workflows"])

YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
JSON_TYPES = ("application/json", "")
MAX_REVISION = 2**31 - 1
StrictQuery = Annotated[
    bool,
    Query(
        description="Refuse the save (422 salesforce_checks_failed) if the Salesforce checks "
        "warn about anything, or cannot be run."
    ),
]


class ProblemOut(Reply):
    path: str
    message: str
    character: int | None = None
    task: str | None = Field(default=None, description="The task's id (Salesforce checks).")
    field: str | None = Field(default=None, description="The Salesforce field, if one.")
    code: str | None = Field(default=None, description="What the check found, for scripts.")
    fix: str | None = Field(default=None, description="What to change, and where.")


class WorkflowSummaryOut(Reply):
    id: str
    survey_id: str
    name: str
    event_type: str
    enabled: bool
    revision: int
    created_by: str
    created_at: datetime
    updated_at: datetime


class WorkflowOut(WorkflowSummaryOut):
    document: dict[str, Any]
    warnings: list[ProblemOut]
    outcome: Literal["created", "updated", "unchanged"] | None = None


class AuthorOut(Reply):
    id: str
    email: str
    name: str


class RevisionOut(Reply):
    revision: int
    author: AuthorOut
    created_at: datetime
    summary: str
    enabled: bool


class RevisionDetailOut(RevisionOut):
    workflow_id: str
    document: dict[str, Any]


class ConnectionChoiceOut(Reply):
    id: str
    name: str
    type: str
    status: str
    status_reason: str


def _reply(view: WorkflowView, status: int = 200) -> JSONResponse:
    body = WorkflowOut(
        **WorkflowSummaryOut.model_validate(view.workflow).model_dump(),
        document=view.workflow.document,
        warnings=[ProblemOut(**w.as_dict()) for w in view.warnings],
        outcome=view.outcome,
    )
    return JSONResponse(
        body.model_dump(mode="json"), status, headers={"ETag": f'"{view.workflow.revision}"'}
    )


async def _document(request: Request) -> Any:
    """The body as data: JSON by default, YAML when the content type says so."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    is_json = media_type in JSON_TYPES or media_type.endswith("+json")
    syntax = "yaml" if media_type in YAML_TYPES else "json" if is_json else None
    if syntax is None:
        raise UnsupportedMediaType(
            f"Send the workflow document as JSON (application/json) or YAML "
            f"(application/yaml), not {media_type[:100]}."
        )
    raw = await request.body()
    return await run_in_threadpool(workflows.parse_text, raw, syntax)


@dataclass(frozen=True)
class _Save:
    """A save of a workflow document as the create, apply and replace routes take it: the
    request (its body is the document), who saves, and whether any Salesforce warning refuses
    the save."""

    request: Request
    actor: Actor
    container: Container
    strict: bool

    async def run(
        self, save: Callable[..., WorkflowView], target_id: str, **options: Any
    ) -> WorkflowView:
        """Read the document from the body and hand it to the service `save` (with the save
        checks) for the survey or workflow `target_id`."""
        document = await _document(self.request)
        return await run_in_threadpool(
            save, self.container.db, self.actor, target_id, document,
            checks=SaveChecks.of(self.container), strict=self.strict, **options,
        )  # fmt: skip


def _save(
    request: Request, actor: ApiActor, container: AppContainer, strict: StrictQuery = False
) -> _Save:
    return _Save(request, actor, container, strict)


SaveInput = Annotated[_Save, Depends(_save)]


def _expected_revision(if_match: str | None) -> int | None:
    return if_match_number(if_match, "a workflow revision", max_digits=9)


@router.post(
    "",
    status_code=201,
    response_model=WorkflowOut,
    summary="Create a workflow from a document (JSON or YAML)",
)
async def create_workflow(survey_id: str, save: SaveInput) -> JSONResponse:
    return _reply(await save.run(workflows.create_workflow, survey_id), 201)


@router.get("", response_model=list[WorkflowSummaryOut], summary="The survey's workflows")
def list_workflows(survey_id: str, actor: ApiActor, db: Db) -> list[Workflow]:
    return workflows.list_workflows(db, actor, survey_id)


@router.post(
    "/apply",
    response_model=WorkflowOut,
    responses={201: {"model": WorkflowOut, "description": "A workflow of that name was created."}},
    summary="Create or update the workflow with the document's name",
)
async def apply_workflow(survey_id: str, save: SaveInput) -> JSONResponse:
    """Workflows as code: `outcome` says `created` (201), `updated` or `unchanged` (200)."""
    view = await save.run(workflows.apply_workflow, survey_id)
    return _reply(view, 201 if view.outcome == "created" else 200)


@router.get(
    "/connections",
    response_model=list[ConnectionChoiceOut],
    summary="The connections you may pick for this survey's tasks (editors and up)",
)
def list_connection_choices(survey_id: str, actor: ApiActor, db: Db) -> list[Any]:
    """The owner (or an admin) sees all the owner's connections; an editor those the owner
    allowed for this survey (`.../connection-grants`). Viewers get 403."""
    return workflows.owner_connections(db, actor, survey_id)


@router.get(
    "/{workflow_id}",
    response_model=WorkflowOut,
    summary="A workflow: document, revision, state and warnings",
)
def get_workflow(survey_id: str, workflow_id: str, actor: ApiActor, db: Db) -> JSONResponse:
    return _reply(workflows.get_workflow(db, actor, workflow_id, survey_id=survey_id))


@router.put(
    "/{workflow_id}",
    response_model=WorkflowOut,
    summary="Replace the document (a new revision if it changed)",
)
async def update_workflow(
    survey_id: str,
    workflow_id: str,
    save: SaveInput,
    if_match: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    expected = _expected_revision(if_match)
    view = await save.run(
        workflows.update_workflow, workflow_id, survey_id=survey_id, expected_revision=expected
    )
    return _reply(view)


@router.delete("/{workflow_id}", status_code=204, summary="Delete a workflow and its revisions")
def delete_workflow(survey_id: str, workflow_id: str, actor: ApiActor, db: Db) -> Response:
    workflows.delete_workflow(db, actor, workflow_id, survey_id=survey_id)
    return Response(status_code=204)


@router.post("/{workflow_id}/enable", response_model=WorkflowOut, summary="Enable a workflow")
def enable_workflow(survey_id: str, workflow_id: str, actor: ApiActor, db: Db) -> JSONResponse:
    return _reply(workflows.set_enabled(db, actor, workflow_id, True, survey_id=survey_id))


@router.post("/{workflow_id}/disable", response_model=WorkflowOut, summary="Disable a workflow")
def disable_workflow(survey_id: str, workflow_id: str, actor: ApiActor, db: Db) -> JSONResponse:
    return _reply(workflows.set_enabled(db, actor, workflow_id, False, survey_id=survey_id))


@router.get("/{workflow_id}/revisions", response_model=list[RevisionOut], summary="Every revision")
def list_revisions(
    survey_id: str, workflow_id: str, actor: ApiActor, db: Db
) -> list[WorkflowRevision]:
    return workflows.list_revisions(db, actor, workflow_id, survey_id=survey_id)


@router.get(
    "/{workflow_id}/revisions/{revision}",
    response_model=RevisionDetailOut,
    summary="One revision, with its document",
)
def get_revision(
    survey_id: str,
    workflow_id: str,
    revision: Annotated[int, Path(ge=1, le=MAX_REVISION)],
    actor: ApiActor,
    db: Db,
) -> WorkflowRevision:
    return workflows.get_revision(db, actor, workflow_id, revision, survey_id=survey_id)


@router.get(
    "/{workflow_id}/diff",
    response_class=OwnMediaType,
    responses={200: {"content": {"text/x-diff": {"schema": {"type": "string"}}}}},
    summary="Unified diff of two revisions' YAML",
)
def diff_revisions(
    survey_id: str,
    workflow_id: str,
    actor: ApiActor,
    db: Db,
    from_revision: Annotated[int | None, Query(alias="from", ge=1, le=MAX_REVISION)] = None,
    to_revision: Annotated[int | None, Query(alias="to", ge=1, le=MAX_REVISION)] = None,
) -> PlainTextResponse:
    """`from` defaults to the revision before `to`, `to` to the current one. An empty body
    means the documents are the same."""
    diff = workflows.diff_revisions(
        db, actor, workflow_id, from_revision, to_revision, survey_id=survey_id
    )
    return PlainTextResponse(diff, media_type="text/x-diff; charset=utf-8")


@router.get(
    "/{workflow_id}/export",
    response_class=OwnMediaType,
    # The workflow document, exactly as saved (docs/workflows.md): free-form by design.
    responses={200: {"content": {"text/yaml": {"schema": {"type": "object"}}}}},
    summary="The document as YAML, exactly as saved",
)
def export_workflow(
    survey_id: str,
    workflow_id: str,
    actor: ApiActor,
    db: Db,
    revision: Annotated[int | None, Query(ge=1, le=MAX_REVISION)] = None,
) -> PlainTextResponse:
    text = workflows.export_workflow(db, actor, workflow_id, revision=revision, survey_id=survey_id)
    return PlainTextResponse(text, media_type="text/yaml; charset=utf-8")


class DryRunIn(RequestBody):
    response_id: str | None = Field(default=None, min_length=1, max_length=40)
    event_fields: dict[str, str | int | float | bool | None] | None = Field(
        default=None,
        description="For an outbound message workflow: the record's fields as Salesforce would "
        'send them, e.g. {"Id": "500...", "SuppliedEmail": "..."}.',
    )


class TaskPreviewOut(Reply):
    """What one task would do: a Salesforce record, a contact and invitation, or a mail. The
    other fields depend on the type (docs/workflows.md, "Dry run")."""

    model_config = ConfigDict(extra="allow")

    id: str
    type: Literal["salesforce", "directory", "email"]


class DryRunOut(Reply):
    workflow_id: str
    response_id: str | None = Field(default=None, description="For a survey_response workflow.")
    channel: str | None = Field(default=None, description="The response's channel.")
    event_fields: dict[str, str | None] | None = Field(
        default=None, description="For an outbound message workflow: the record's fields."
    )
    would_run: bool
    why_not: list[str]
    tasks: list[TaskPreviewOut]


@router.post(
    "/{workflow_id}/test",
    response_model=DryRunOut,
    summary="Dry run: what this workflow would send for a response or an outbound record "
    "(editors and up)",
)
def test_workflow(
    survey_id: str, workflow_id: str, body: DryRunIn, actor: ApiActor, container: AppContainer
) -> JSONResponse:
    """Evaluate the event options and conditions, and show the exact records (and mails) the
    workflow would send for the response (`response_id`) or, for an outbound message workflow,
    for a record's fields (`event_fields`). Nothing is sent or stored; no run is recorded."""
    workflows.get_workflow(container.db, actor, workflow_id, survey_id=survey_id)
    preview = dry_run(
        container, actor, workflow_id, body.response_id, event_fields=body.event_fields
    )
    # As built: the keys a preview leaves out (response_id of an outbound one...) stay out.
    return JSONResponse(jsonable_encoder(preview))


OutboundEndpointOut = reply_model("OutboundEndpointOut", workflows.OutboundEndpoint, __name__)


@router.get(
    "/{workflow_id}/outbound",
    response_model=OutboundEndpointOut,
    summary="The outbound-message URL and the Salesforce setup steps (editors and up)",
)
def get_outbound_endpoint(
    survey_id: str, workflow_id: str, actor: ApiActor, container: AppContainer
) -> workflows.OutboundEndpoint:
    return workflows.outbound_endpoint(
        container.db, actor, survey_id, workflow_id, base_url=container.settings.base_url
    )


@router.post(
    "/{workflow_id}/outbound/rotate",
    response_model=OutboundEndpointOut,
    summary="A new outbound-message URL; the old one stops working at once (editors and up)",
)
def rotate_outbound_token(
    survey_id: str, workflow_id: str, actor: ApiActor, container: AppContainer
) -> workflows.OutboundEndpoint:
    return workflows.rotate_outbound_token(
        container.db, actor, survey_id, workflow_id, base_url=container.settings.base_url
    )
