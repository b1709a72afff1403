"""/api/v1/surveys/{id}/distributions: the survey's email invitations and how each went."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from cxloop.services import distributions
from cxloop.web.api.schemas import PageOut, reply_model
from cxloop.web.deps import ApiActor, Db

router = APIRouter(prefix="/api/v1", tags=["distributions"])


InvitationOut = reply_model("InvitationOut", distributions.InvitationView, __name__)


# A list shows each distribution without its body and invitations (DistributionDetail has them).
DistributionOut = reply_model(
    "DistributionOut", distributions.DistributionView, __name__, omit=("body", "invitations")
)


class DistributionDetail(DistributionOut):
    body: str
    invitations: list[InvitationOut]


@router.get("/surveys/{survey_id}/distributions", response_model=PageOut[DistributionOut])
def list_distributions(
    survey_id: str,
    actor: ApiActor,
    db: Db,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> PageOut[DistributionOut]:
    """The survey's distributions, newest first, with invitations counted by status."""
    page = distributions.list_distributions(db, actor, survey_id, limit=limit, cursor=cursor)
    return PageOut(
        items=[DistributionOut.model_validate(item) for item in page.items],
        next_cursor=page.next_cursor,
    )


@router.get(
    "/surveys/{survey_id}/distributions/{distribution_id}", response_model=DistributionDetail
)
def get_distribution(
    survey_id: str, distribution_id: str, actor: ApiActor, db: Db
) -> distributions.DistributionView:
    """A distribution with every invitation: contact email, status, when sent, or why not."""
    return distributions.get_distribution(db, actor, distribution_id, survey_id=survey_id)
