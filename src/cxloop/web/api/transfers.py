"""/api/v1/transfers: offers to take over a survey, to accept, decline or cancel.

An offer is made with `POST /api/v1/surveys/{id}/transfer` (surveys.py); an admin's transfer
happens at once and is listed here as accepted.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from cxloop.db.ownership_models import SurveyTransfer
from cxloop.domain.statuses import TransferStatus
from cxloop.services import transfers
from cxloop.services.transfers import TransferView
from cxloop.web.api.schemas import Reply, RequestBody, reply_model
from cxloop.web.deps import ApiActor, Db

router = APIRouter(prefix="/api/v1/transfers", tags=["transfers"])


class TransferUserOut(Reply):
    id: str
    email: str
    name: str


PausedTaskOut = reply_model("PausedTaskOut", transfers.PausedTask, __name__)


class TransferOut(Reply):
    id: str
    survey_id: str
    survey_name: str
    from_user: TransferUserOut
    to_user: TransferUserOut
    status: TransferStatus
    keep_previous_owner_as_editor: bool
    kept_previous_owner: bool | None
    message: str
    created_at: datetime
    expires_at: datetime
    decided_at: datetime | None
    decided_by: str | None
    paused_tasks: list[PausedTaskOut] = []


class AcceptIn(RequestBody):
    keep_previous_owner_as_editor: bool = False


def transfer_out(transfer: SurveyTransfer, view: TransferView | None = None) -> TransferOut:
    """The reply describing an offer (and, on acceptance, the tasks the move paused)."""
    return TransferOut(
        id=transfer.id,
        survey_id=transfer.survey_id,
        survey_name=transfer.survey.name,
        from_user=TransferUserOut.model_validate(transfer.from_user),
        to_user=TransferUserOut.model_validate(transfer.to_user),
        status=transfer.status,  # type: ignore[arg-type]
        keep_previous_owner_as_editor=transfer.keep_previous_owner_as_editor,
        kept_previous_owner=transfer.kept_previous_owner,
        message=transfer.message,
        created_at=transfer.created_at,
        expires_at=transfer.expires_at,
        decided_at=transfer.decided_at,
        decided_by=transfer.decided_by,
        paused_tasks=[PausedTaskOut.model_validate(p) for p in (view.paused_tasks if view else [])],
    )


@router.get("", response_model=list[TransferOut], summary="Transfer offers to you or from you")
def list_transfers(
    actor: ApiActor,
    db: Db,
    direction: Literal["incoming", "outgoing", "all"] = "incoming",
    status: Annotated[
        TransferStatus | None, Query(description="Default: only open offers (pending).")
    ] = TransferStatus.PENDING,
) -> list[TransferOut]:
    """`incoming`: offered to you; `outgoing`: made by you; `all`: both (an admin: everyone's).
    Newest first, at most 500."""
    found = transfers.list_transfers(db, actor, direction=direction, status=status)
    return [transfer_out(t) for t in found]


@router.get("/{transfer_id}", response_model=TransferOut, summary="One transfer offer")
def get_transfer(transfer_id: str, actor: ApiActor, db: Db) -> TransferOut:
    return transfer_out(transfers.get_transfer(db, actor, transfer_id))


@router.post(
    "/{transfer_id}/accept",
    response_model=TransferOut,
    summary="Take the survey over (the receiver); says which tasks were paused",
)
def accept_transfer(
    transfer_id: str, actor: ApiActor, db: Db, body: AcceptIn | None = None
) -> TransferOut:
    """The previous owner stays on as editor only if the offer asked for it and you send
    `keep_previous_owner_as_editor: true`. Salesforce tasks whose connection you cannot use
    are paused (`paused_tasks`) until you pick one of your connections for them."""
    keep = body.keep_previous_owner_as_editor if body else False
    view = transfers.accept_transfer(db, actor, transfer_id, keep_previous_owner_as_editor=keep)
    return transfer_out(view.transfer, view)


@router.post("/{transfer_id}/decline", response_model=TransferOut, summary="Say no (the receiver)")
def decline_transfer(transfer_id: str, actor: ApiActor, db: Db) -> TransferOut:
    return transfer_out(transfers.decline_transfer(db, actor, transfer_id))


@router.post(
    "/{transfer_id}/cancel",
    response_model=TransferOut,
    summary="Take the offer back (the sender or an admin)",
)
def cancel_transfer(transfer_id: str, actor: ApiActor, db: Db) -> TransferOut:
    return transfer_out(transfers.cancel_transfer(db, actor, transfer_id))
