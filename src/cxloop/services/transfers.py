"""Moving a survey to another owner: an offer the receiver accepts (or an admin's act).

An owner offers their survey to another user; nothing changes until the receiver accepts. The
sender stays on as editor only if they asked to and the receiver agrees. The receiver may
decline, the sender (or an admin) cancel; an offer left open past its expiry is expired when
next seen. An admin moves a survey at once.

On the move (one transaction): the new owner owns the survey; the previous owner's grants of
connections to it end; every Salesforce task whose connection the new owner cannot use is
paused with a reason (`WorkflowTaskPause`) until the new owner picks one of theirs and saves the
workflow, so that nobody's credentials ever run for someone else. Every step is audited.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cxloop.db.base import utcnow
from cxloop.db.models import Survey, SurveyCollaborator, User
from cxloop.db.ownership_models import SurveyTransfer
from cxloop.db.uow import Database, UnitOfWork
from cxloop.db.workflow_models import Workflow, WorkflowTaskPause
from cxloop.domain.statuses import TransferStatus
from cxloop.domain.workflow import SalesforceTask, WorkflowDocumentError, parse_document
from cxloop.errors import Conflict, Expired, Forbidden, InvalidInput, NotFound
from cxloop.services import audit
from cxloop.services.access import Actor, SurveyAccess, get_survey_for
from cxloop.services.connection_grants import drop_grants
from cxloop.services.users import normalize_email
from cxloop.services.workflows import rebind_paused_task_runs, resolve_owner_connection

Direction = Literal["incoming", "outgoing", "all"]
MAX_MESSAGE = 2000


class TransferExpired(Expired):
    """The offer was left open past its expiry."""

    code = "transfer_expired"


@dataclass(frozen=True)
class PausedTask:
    """A Salesforce task held back because its new owner cannot use its connection."""

    workflow_id: str
    workflow_name: str
    task_id: str
    task_name: str
    connection: str
    reason: str


@dataclass
class TransferView:
    """A transfer offer and, once accepted, the tasks its move paused."""

    transfer: SurveyTransfer
    paused_tasks: list[PausedTask] = field(default_factory=list)


# --- offering


def offer_transfer(
    db: Database,
    actor: Actor,
    survey_id: str,
    new_owner_email: str,
    *,
    keep_previous_owner_as_editor: bool,
    expires_in_days: int,
    message: str = "",
) -> TransferView:
    """Offer the survey to another user (its owner), or move it at once (an admin).

    Only one offer per survey is open at a time; the receiver must be an active user other
    than the owner.
    """
    if len(message) > MAX_MESSAGE:
        raise InvalidInput(f"The message is too long: at most {MAX_MESSAGE} characters.")
    with _one_open_offer(survey_id), db.uow() as uow:
        session = uow.session
        survey = get_survey_for(session, survey_id, actor, SurveyAccess.OWN)
        survey = _lock_survey(session, survey.id)
        receiver = _receiver(session, survey, new_owner_email)
        _expire_stale(session, survey_id=survey.id)
        open_offer = session.scalar(
            select(SurveyTransfer).where(
                SurveyTransfer.survey_id == survey.id,
                SurveyTransfer.status == TransferStatus.PENDING,
            )
        )
        now = utcnow()
        transfer = SurveyTransfer(
            survey_id=survey.id,
            from_user_id=survey.owner_id,
            to_user_id=receiver.id,
            created_by=actor.id,
            keep_previous_owner_as_editor=keep_previous_owner_as_editor,
            message=message,
            created_at=now,
            expires_at=now + timedelta(days=expires_in_days),
        )
        paused: list[PausedTask] = []
        if actor.is_admin:
            # An admin's act needs no consent; an open offer it overtakes is cancelled.
            if open_offer is not None:
                _close(
                    session,
                    actor,
                    open_offer,
                    TransferStatus.CANCELLED,
                    why="an admin moved the survey",
                )
                session.flush()
            transfer.status = TransferStatus.ACCEPTED
            transfer.decided_at = now
            transfer.decided_by = actor.id
            transfer.kept_previous_owner = keep_previous_owner_as_editor
            session.add(transfer)
            session.flush()
            paused = _hand_over(uow, actor, survey, transfer)
        else:
            if open_offer is not None:
                raise Conflict(
                    f"Survey {survey.id} already has an open transfer offer to "
                    f"{open_offer.to_user.email} ({open_offer.id}): cancel it first.",
                    code="transfer_pending",
                )
            session.add(transfer)
            session.flush()
            audit.record(
                session, actor.id, "survey.transfer.offer", "survey", survey.id,
                transfer_id=transfer.id, to=receiver.email,
                keep_previous_owner_as_editor=keep_previous_owner_as_editor,
                expires_at=transfer.expires_at.isoformat(),
            )  # fmt: skip
        uow.commit()
        transfer_id = transfer.id
    return TransferView(_reload(db, transfer_id), paused)


@contextmanager
def _one_open_offer(survey_id: str) -> Iterator[None]:
    """Two offers that raced past the survey's lock: the database lets one in, the other is
    told so."""
    try:
        yield
    except IntegrityError as exc:
        raise Conflict(
            f"Survey {survey_id} got another transfer offer at the same moment; reload.",
            code="transfer_pending",
        ) from exc


# --- reading


def list_transfers(
    db: Database,
    actor: Actor,
    *,
    direction: Direction = "incoming",
    status: str | None = TransferStatus.PENDING,
) -> list[SurveyTransfer]:
    """Offers to the actor (incoming), from the actor (outgoing) or both (all; for an admin,
    everyone's), newest first. Offers past their expiry are expired first."""
    if direction not in ("incoming", "outgoing", "all"):
        raise InvalidInput(
            f"Unknown direction {direction!r}: use incoming, outgoing or all.",
            code="bad_direction",
        )
    if status is not None and status not in _STATUSES:
        raise InvalidInput(
            f"Unknown status {status!r}: use one of {', '.join(_STATUSES)}.", code="bad_status"
        )
    with db.uow() as uow:
        _expire_stale(uow.session)
        uow.commit()
    incoming = SurveyTransfer.to_user_id == actor.id
    outgoing = or_(SurveyTransfer.from_user_id == actor.id, SurveyTransfer.created_by == actor.id)
    query = select(SurveyTransfer).order_by(
        SurveyTransfer.created_at.desc(), SurveyTransfer.id.desc()
    )
    if direction == "incoming":
        query = query.where(incoming)
    elif direction == "outgoing":
        query = query.where(outgoing)
    elif not actor.is_admin:
        query = query.where(or_(incoming, outgoing))
    if status is not None:
        query = query.where(SurveyTransfer.status == status)
    with db.reader() as uow:
        return list(uow.session.scalars(query.limit(500)))


def get_transfer(db: Database, actor: Actor, transfer_id: str) -> SurveyTransfer:
    """One offer, for its sender, its receiver or an admin."""
    with db.uow() as uow:
        transfer = _visible(uow.session, actor, transfer_id)
        _expire_stale(uow.session, transfer_id=transfer.id)
        uow.commit()
    return _reload(db, transfer_id)


# --- deciding


def accept_transfer(
    db: Database, actor: Actor, transfer_id: str, *, keep_previous_owner_as_editor: bool = False
) -> TransferView:
    """The receiver takes the survey over. The previous owner stays on as editor only if the
    offer asked for it and the receiver agrees here."""
    with db.uow() as uow:
        session = uow.session
        transfer = _decidable(uow, actor, transfer_id, by="receiver")
        if keep_previous_owner_as_editor and not transfer.keep_previous_owner_as_editor:
            raise InvalidInput(
                f"{transfer.from_user.email} did not ask to stay on as editor: accept without "
                "keeping them, or add them as a collaborator afterwards.",
                code="keep_not_offered",
            )
        survey = _lock_survey(session, transfer.survey_id)
        if survey.owner_id != transfer.from_user_id:
            _close(
                session,
                None,
                transfer,
                TransferStatus.CANCELLED,
                why="the survey changed owner meanwhile",
            )
            uow.commit()
            raise Conflict(
                f"Survey {survey.id} changed owner since this offer was made, so the offer "
                "is void.",
                code="transfer_outdated",
            )
        now = utcnow()
        transfer.status = TransferStatus.ACCEPTED
        transfer.decided_at = now
        transfer.decided_by = actor.id
        transfer.kept_previous_owner = keep_previous_owner_as_editor
        audit.record(
            session, actor.id, "survey.transfer.accept", "survey", survey.id,
            transfer_id=transfer.id, previous_owner_kept=keep_previous_owner_as_editor,
        )  # fmt: skip
        paused = _hand_over(uow, actor, survey, transfer)
        uow.commit()
    return TransferView(_reload(db, transfer_id), paused)


def decline_transfer(db: Database, actor: Actor, transfer_id: str) -> SurveyTransfer:
    """The receiver says no; the survey stays where it is."""
    return _close_open_offer(db, actor, transfer_id, "receiver", TransferStatus.DECLINED)


def cancel_transfer(db: Database, actor: Actor, transfer_id: str) -> SurveyTransfer:
    """The sender (or an admin) takes the offer back."""
    return _close_open_offer(db, actor, transfer_id, "sender", TransferStatus.CANCELLED)


def _close_open_offer(
    db: Database, actor: Actor, transfer_id: str, by: str, status: str
) -> SurveyTransfer:
    """Close an offer that `by` (receiver or sender) may still decide, with this status."""
    with db.uow() as uow:
        transfer = _decidable(uow, actor, transfer_id, by=by)
        _close(uow.session, actor, transfer, status)
        uow.commit()
    return _reload(db, transfer_id)


# --- the move itself


def _hand_over(
    uow: UnitOfWork, actor: Actor, survey: Survey, transfer: SurveyTransfer
) -> list[PausedTask]:
    """Make the offer's receiver the owner, in the caller's transaction."""
    session = uow.session
    previous: User = survey.owner
    receiver = session.get(User, transfer.to_user_id)
    assert receiver is not None
    survey.collaborators = [c for c in survey.collaborators if c.user_id != receiver.id]
    session.flush()
    if transfer.kept_previous_owner:
        survey.collaborators.append(SurveyCollaborator(user_id=previous.id, role="editor"))
    survey.owner_id = receiver.id
    drop_grants(session, actor.id, survey, why=f"the survey moved to {receiver.email}")
    paused = _pause_foreign_tasks(uow, actor, survey, previous, receiver)
    audit.record(
        session, actor.id, "survey.transfer", "survey", survey.id,
        before=previous.email, after=receiver.email,
    )  # fmt: skip
    session.flush()
    session.expire(survey, ["owner"])
    return paused


def _pause_foreign_tasks(
    uow: UnitOfWork, actor: Actor, survey: Survey, previous: User, receiver: User
) -> list[PausedTask]:
    """Pause every Salesforce task that would run with a connection the receiver cannot use.

    A task is bound to the connection its reference names among the previous owner's; the
    receiver holds none of those. A reference the previous owner had no connection for, but the
    receiver has, is left alone: it names the receiver's own connection already.
    """
    session = uow.session
    workflows = list(session.scalars(select(Workflow).where(Workflow.survey_id == survey.id)))
    if workflows:
        session.execute(
            delete(WorkflowTaskPause).where(
                WorkflowTaskPause.workflow_id.in_([w.id for w in workflows])
            )
        )
    paused: list[PausedTask] = []
    resumed: list[str] = []
    for workflow in workflows:
        try:
            document = parse_document(workflow.document)
        except WorkflowDocumentError:
            continue  # saved under older rules; its warnings say what to fix
        for task in document.tasks:
            if not isinstance(task, SalesforceTask):
                continue
            had = resolve_owner_connection(session, previous.id, task.connection)
            has = resolve_owner_connection(session, receiver.id, task.connection)
            if had is None and has is not None:
                # It names the receiver's own connection already (the survey may be coming
                # back to them): runs that waited for such a connection may go.
                resumed += rebind_paused_task_runs(
                    session, workflow.id, task.id, survey, task.connection
                )
                continue
            same_name = (
                f" You have a connection named {has.name!r} too: save the workflow to use it."
                if has is not None
                else ""
            )
            reason = (
                f"Task '{task.name}' ({task.id}) of workflow '{workflow.name}' uses the "
                f"connection {task.connection!r} of {previous.email}, which {receiver.email} "
                f"cannot use since the survey moved to them. {receiver.email}: pick one of "
                f"your connections for this task and save the workflow; its runs wait until "
                f"then.{same_name}"
            )
            session.add(
                WorkflowTaskPause(
                    workflow_id=workflow.id,
                    task_id=task.id,
                    connection=task.connection,
                    reason=reason,
                )
            )
            audit.record(
                session, actor.id, "workflow.task.pause", "workflow", workflow.id,
                survey_id=survey.id, task_id=task.id, connection=task.connection,
                reason=reason,
            )  # fmt: skip
            paused.append(
                PausedTask(workflow.id, workflow.name, task.id, task.name, task.connection, reason)
            )
    uow.ledger.dispatch_after_commit(uow, resumed)
    return paused


# --- helpers

_STATUSES = tuple(TransferStatus)


def _receiver(session: Session, survey: Survey, email: str) -> User:
    receiver = session.scalar(select(User).where(User.email == normalize_email(email)))
    if receiver is None:
        raise NotFound(f"No user with email {email}: create the user first.", code="user_not_found")
    if not receiver.is_active:
        raise InvalidInput(
            f"{receiver.email} is deactivated and cannot own a survey.", code="user_inactive"
        )
    if receiver.id == survey.owner_id:
        raise Conflict(f"{receiver.email} owns this survey already.", code="already_owner")
    return receiver


def _lock_survey(session: Session, survey_id: str) -> Survey:
    # The row alone is locked (PostgreSQL refuses FOR UPDATE across the owner's outer join),
    # then read afresh.
    session.execute(select(Survey.id).where(Survey.id == survey_id).with_for_update())
    survey = session.get(Survey, survey_id, populate_existing=True)
    if survey is None:
        raise NotFound(f"No survey {survey_id!r}.", subject="survey")
    return survey


def _visible(
    session: Session, actor: Actor, transfer_id: str, *, lock: bool = False
) -> SurveyTransfer:
    if lock:
        session.execute(
            select(SurveyTransfer.id).where(SurveyTransfer.id == transfer_id).with_for_update()
        )
    transfer = session.get(SurveyTransfer, transfer_id, populate_existing=lock)
    involved = transfer is not None and actor.id in (
        transfer.from_user_id,
        transfer.to_user_id,
        transfer.created_by,
    )
    if transfer is None or not (involved or actor.is_admin):
        # Strangers cannot tell an offer from nothing; an offer of a deleted survey is gone.
        raise NotFound(f"No transfer offer {transfer_id!r}.", code="transfer_not_found")
    return transfer


def _decidable(uow: UnitOfWork, actor: Actor, transfer_id: str, *, by: str) -> SurveyTransfer:
    """The open offer, if the actor may decide it as `by` (receiver, or sender/admin). An
    offer found past its expiry is expired (and that committed) before saying so."""
    session = uow.session
    # Locks in the order every writer takes them, survey before offer, so that an admin's
    # transfer and an acceptance never wait on each other in a circle.
    _lock_survey(session, _visible(session, actor, transfer_id).survey_id)
    transfer = _visible(session, actor, transfer_id, lock=True)
    if by == "receiver" and transfer.to_user_id != actor.id:
        raise Forbidden(
            f"This offer is addressed to {transfer.to_user.email}: only they can accept or "
            "decline it.",
            code="not_your_offer",
        )
    is_sender = actor.id in (transfer.from_user_id, transfer.created_by)
    if by == "sender" and not (is_sender or actor.is_admin):
        raise Forbidden(
            "Only the sender of an offer (or an admin) can cancel it; decline it instead.",
            code="not_your_offer",
        )
    if transfer.status == TransferStatus.PENDING and transfer.expires_at <= utcnow():
        _close(session, None, transfer, TransferStatus.EXPIRED)
        uow.commit()
        raise TransferExpired(
            f"The offer {transfer.id} expired on {transfer.expires_at:%Y-%m-%d %H:%M} UTC; "
            "ask the owner for a new one.",
        )
    if transfer.status != TransferStatus.PENDING:
        raise Conflict(
            f"The offer {transfer.id} was {transfer.status} already; nothing left to decide.",
            code="transfer_not_pending",
        )
    return transfer


def _close(
    session: Session,
    actor: Actor | None,
    transfer: SurveyTransfer,
    status: str,
    *,
    why: str = "",
) -> None:
    transfer.status = status
    transfer.decided_at = utcnow()
    transfer.decided_by = actor.id if actor else None
    action = {
        TransferStatus.DECLINED: "decline",
        TransferStatus.CANCELLED: "cancel",
        TransferStatus.EXPIRED: "expire",
    }[status]
    details: dict[str, object] = {"transfer_id": transfer.id, "to": transfer.to_user.email}
    if why:
        details["reason"] = why
    audit.record(
        session, actor.id if actor else None, f"survey.transfer.{action}", "survey",
        transfer.survey_id, **details,
    )  # fmt: skip


def _expire_stale(
    session: Session, *, survey_id: str | None = None, transfer_id: str | None = None
) -> None:
    """Expire the open offers past their expiry (when they are next seen), with audit."""
    query = select(SurveyTransfer).where(
        and_(SurveyTransfer.status == TransferStatus.PENDING, SurveyTransfer.expires_at <= utcnow())
    )
    if survey_id is not None:
        query = query.where(SurveyTransfer.survey_id == survey_id)
    if transfer_id is not None:
        query = query.where(SurveyTransfer.id == transfer_id)
    for transfer in session.scalars(query.limit(1000)):
        _close(session, None, transfer, TransferStatus.EXPIRED)
    session.flush()


def _reload(db: Database, transfer_id: str) -> SurveyTransfer:
    with db.reader() as uow:
        transfer = uow.session.get(SurveyTransfer, transfer_id)
        if transfer is None:
            raise NotFound(f"No transfer offer {transfer_id!r}.", code="transfer_not_found")
        return transfer
