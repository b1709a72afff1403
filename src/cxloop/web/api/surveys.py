"""/api/v1/surveys: surveys as projects, their collaborators, ownership offers, and the
connections their owner allows for them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import Field

from cxloop.db.models import Survey, SurveyCollaborator
from cxloop.domain.statuses import SurveyStatus, TransferStatus
from cxloop.services import connection_grants, surveys, transfers
from cxloop.services.access import Actor
from cxloop.web.api.schemas import PageOut, Reply, RequestBody, reply_model
from cxloop.web.api.transfers import TransferOut, transfer_out
from cxloop.web.deps import ApiActor, AppContainer, Db

router = APIRouter(prefix="/api/v1/surveys", tags=["surveys"])

Role = Literal["editor", "viewer"]


class SurveyCreate(RequestBody):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=20_000)
    language: str = Field(default="en", min_length=2, max_length=16)


class SurveyUpdate(RequestBody):
    """Only the fields sent change. None of them can be null: leave a field out to keep it."""

    name: str = Field(default=None, min_length=1, max_length=200)
    description: str = Field(default=None, max_length=20_000)
    status: SurveyStatus = Field(default=None, strict=False)  # a JSON string
    language: str = Field(default=None, min_length=2, max_length=16)
    anonymous_link: bool = Field(
        default=None,
        description="false: /s/{id} answers only personal and signed links",
    )


class CollaboratorIn(RequestBody):
    email: str = Field(max_length=320)
    role: Role


class RoleIn(RequestBody):
    role: Role


class TransferIn(RequestBody):
    new_owner_email: str = Field(max_length=320)
    keep_previous_owner_as_editor: bool = Field(
        default=True,
        description="Ask to stay on as editor; the receiver decides when accepting.",
    )
    message: str = Field(default="", max_length=2000, description="A note to the receiver.")


GrantOut = reply_model("GrantOut", connection_grants.Grant, __name__)


class UserRef(Reply):
    id: str
    email: str
    name: str


class CollaboratorOut(Reply):
    user: UserRef
    role: str
    added_at: datetime


class SurveyOut(Reply):
    id: str
    name: str
    description: str
    status: str
    language: str
    anonymous_link: bool
    owner: UserRef
    collaborators: list[CollaboratorOut]
    your_role: str
    created_at: datetime
    updated_at: datetime


def _out(survey: Survey, actor: Actor) -> SurveyOut:
    return SurveyOut(
        id=survey.id,
        name=survey.name,
        description=survey.description,
        status=survey.status,
        language=survey.language,
        anonymous_link=survey.anonymous_link,
        owner=UserRef.model_validate(survey.owner),
        collaborators=[CollaboratorOut.model_validate(c) for c in survey.collaborators],
        your_role=surveys.survey_access(survey, actor),
        created_at=survey.created_at,
        updated_at=survey.updated_at,
    )


@router.post("", status_code=201, response_model=SurveyOut)
def create_survey(body: SurveyCreate, actor: ApiActor, db: Db) -> SurveyOut:
    survey = surveys.create_survey(db, actor, body.name, body.description, body.language)
    return _out(survey, actor)


@router.get("", response_model=PageOut[SurveyOut])
def list_surveys(
    actor: ApiActor,
    db: Db,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    status: SurveyStatus | None = None,
    q: Annotated[str | None, Query(max_length=200, description="Name contains")] = None,
) -> PageOut[SurveyOut]:
    page = surveys.list_surveys(
        db, actor, limit=limit, cursor=cursor, status=status, name_contains=q
    )
    return PageOut(items=[_out(s, actor) for s in page.items], next_cursor=page.next_cursor)


@router.get("/{survey_id}", response_model=SurveyOut)
def get_survey(survey_id: str, actor: ApiActor, db: Db) -> SurveyOut:
    return _out(surveys.get_survey(db, actor, survey_id), actor)


@router.patch("/{survey_id}", response_model=SurveyOut)
def update_survey(survey_id: str, body: SurveyUpdate, actor: ApiActor, db: Db) -> SurveyOut:
    changes = body.model_dump(exclude_unset=True)
    survey = surveys.update_survey(db, actor, survey_id, changes)
    return _out(survey, actor)


@router.post("/{survey_id}/open", response_model=SurveyOut)
def open_survey(survey_id: str, actor: ApiActor, db: Db) -> SurveyOut:
    """Open the survey for responses (status `active`); opening an open survey changes nothing.
    The same as `PATCH` with `{"status": "active"}`."""
    return _out(surveys.open_survey(db, actor, survey_id), actor)


@router.post("/{survey_id}/close", response_model=SurveyOut)
def close_survey(survey_id: str, actor: ApiActor, db: Db) -> SurveyOut:
    """Close the survey: no more responses (status `closed`); `open` reopens it."""
    return _out(surveys.close_survey(db, actor, survey_id), actor)


@router.delete("/{survey_id}", status_code=204)
def delete_survey(survey_id: str, actor: ApiActor, db: Db) -> Response:
    surveys.delete_survey(db, actor, survey_id)
    return Response(status_code=204)


@router.post("/{survey_id}/collaborators", status_code=201, response_model=CollaboratorOut)
def add_collaborator(
    survey_id: str, body: CollaboratorIn, actor: ApiActor, db: Db
) -> SurveyCollaborator:
    return surveys.add_collaborator(db, actor, survey_id, body.email, body.role)


@router.patch("/{survey_id}/collaborators/{user_id}", response_model=CollaboratorOut)
def change_collaborator_role(
    survey_id: str, user_id: str, body: RoleIn, actor: ApiActor, db: Db
) -> SurveyCollaborator:
    return surveys.change_collaborator_role(db, actor, survey_id, user_id, body.role)


@router.delete("/{survey_id}/collaborators/{user_id}", status_code=204)
def remove_collaborator(survey_id: str, user_id: str, actor: ApiActor, db: Db) -> Response:
    surveys.remove_collaborator(db, actor, survey_id, user_id)
    return Response(status_code=204)


@router.post(
    "/{survey_id}/transfer",
    status_code=201,
    response_model=TransferOut,
    responses={200: {"model": TransferOut, "description": "An admin moved the survey at once."}},
    summary="Offer the survey to another user (the owner), or move it at once (an admin)",
)
def transfer_ownership(
    survey_id: str, body: TransferIn, actor: ApiActor, container: AppContainer, response: Response
) -> TransferOut:
    """The owner's transfer is an offer (201, `status: pending`) that the receiver accepts or
    declines under /api/v1/transfers; nothing changes until then. An admin's transfer happens
    at once (200, `status: accepted`, with the tasks it paused)."""
    view = transfers.offer_transfer(
        container.db, actor, survey_id, body.new_owner_email,
        keep_previous_owner_as_editor=body.keep_previous_owner_as_editor,
        expires_in_days=container.settings.transfer_offer_days, message=body.message,
    )  # fmt: skip
    if view.transfer.status == TransferStatus.ACCEPTED:
        response.status_code = 200
    return transfer_out(view.transfer, view)


@router.get(
    "/{survey_id}/connection-grants",
    response_model=list[GrantOut],
    summary="The owner's connections this survey's editors may pick (editors and up)",
)
def list_connection_grants(survey_id: str, actor: ApiActor, db: Db) -> list[Any]:
    return connection_grants.list_grants(db, actor, survey_id)


@router.put(
    "/{survey_id}/connection-grants/{connection}",
    response_model=GrantOut,
    summary="Allow editors to pick one of your connections (id or name) for this survey",
)
def grant_connection(survey_id: str, connection: str, actor: ApiActor, db: Db) -> Any:
    """Only the owner (or an admin) grants, and only the owner's own connections. Granting
    again changes nothing. The audit log records who allowed what."""
    return connection_grants.grant_connection(db, actor, survey_id, connection)


@router.delete(
    "/{survey_id}/connection-grants/{connection}",
    status_code=204,
    summary="Stop editors from picking this connection for this survey",
)
def revoke_connection_grant(survey_id: str, connection: str, actor: ApiActor, db: Db) -> Response:
    connection_grants.revoke_connection(db, actor, survey_id, connection)
    return Response(status_code=204)
