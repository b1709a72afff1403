"""Use cases for surveys as projects: owner and collaborators (transfers: services/transfers)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, or_, select

from cxloop.db.models import (
    COLLABORATOR_ROLES,
    SURVEY_STATUSES,
    Response,
    Survey,
    SurveyCollaborator,
    User,
)
from cxloop.db.uow import Database
from cxloop.db.workflow_models import Workflow
from cxloop.domain.statuses import SurveyStatus
from cxloop.errors import Conflict, InvalidInput, NotFound
from cxloop.services import audit
from cxloop.services.access import Actor, SurveyAccess, access_to, get_survey_for
from cxloop.services.changes import check_changeable
from cxloop.services.pagination import Page, check_limit, paginate
from cxloop.services.users import normalize_email

EDITABLE_FIELDS = ("name", "description", "status", "language", "anonymous_link")


def create_survey(
    db: Database, actor: Actor, name: str, description: str = "", language: str = "en"
) -> Survey:
    """A new draft survey owned by the actor."""
    with db.uow() as uow:
        survey = Survey(
            name=_check_name(name), description=description, language=language, owner_id=actor.id
        )
        uow.session.add(survey)
        uow.session.flush()
        audit.record(uow.session, actor.id, "survey.create", "survey", survey.id, name=survey.name)
        uow.commit()
        return _reload(db, survey.id)


def list_surveys(
    db: Database,
    actor: Actor,
    *,
    limit: int = 50,
    cursor: str | None = None,
    status: str | None = None,
    name_contains: str | None = None,
) -> Page[Survey]:
    """The surveys the actor can see, oldest first, one page at a time."""
    check_limit(limit)
    if status is not None:
        _check_status(status)
    query = select(Survey)
    if not actor.is_admin:
        query = query.where(Survey.id.in_(visible_survey_ids(actor)))
    if status is not None:
        query = query.where(Survey.status == status)
    if name_contains:
        query = query.where(Survey.name.ilike(f"%{_escape_like(name_contains)}%", escape="\\"))
    with db.reader() as uow:
        return paginate(
            uow.session, query, Survey.created_at, Survey.id,
            limit=limit, cursor=cursor, oldest_first=True,
        )  # fmt: skip


@dataclass(frozen=True)
class SurveyStats:
    """How much a survey holds: its responses (all, finished), workflows and latest response."""

    responses: int = 0
    finished_responses: int = 0
    workflows: int = 0
    last_response_at: datetime | None = None


def survey_stats(db: Database, actor: Actor, survey_ids: list[str]) -> dict[str, SurveyStats]:
    """Counts for the surveys among `survey_ids` that the actor can see (for lists).

    One statement, a scalar subquery per count, so that each reads an index of its own: the
    number of responses and the latest one from (survey, created), the incomplete ones from
    (survey, finished) (few, usually). Grouping all of a survey's responses with a filtered
    count and a max read every response row: 60-90 ms at 100,000 responses on SQLite."""
    if not survey_ids:
        return {}
    of_survey = Response.survey_id == Survey.id
    total = select(func.count()).where(of_survey).scalar_subquery()
    incomplete = (
        select(func.count()).where(of_survey, Response.finished.is_(False)).scalar_subquery()
    )
    last = select(func.max(Response.created_at)).where(of_survey).scalar_subquery()
    workflow_count = select(func.count()).where(Workflow.survey_id == Survey.id).scalar_subquery()
    query = select(Survey.id, total, incomplete, last, workflow_count).where(
        Survey.id.in_(survey_ids)
    )
    if not actor.is_admin:
        query = query.where(Survey.id.in_(visible_survey_ids(actor)))
    with db.reader() as uow:
        rows = uow.session.execute(query).all()
    return {
        survey_id: SurveyStats(
            responses=int(responses),
            finished_responses=int(responses) - int(unfinished),
            workflows=int(workflows),
            last_response_at=latest,
        )
        for survey_id, responses, unfinished, latest, workflows in rows
    }


def visible_survey_ids(actor: Actor) -> Select[tuple[str]]:
    """A subquery of the ids of the surveys a (non-admin) actor owns or collaborates on."""
    shared = select(SurveyCollaborator.survey_id).where(SurveyCollaborator.user_id == actor.id)
    return select(Survey.id).where(or_(Survey.owner_id == actor.id, Survey.id.in_(shared)))


def get_survey(db: Database, actor: Actor, survey_id: str) -> Survey:
    with db.reader() as uow:
        return get_survey_for(uow.session, survey_id, actor, SurveyAccess.VIEW)


def update_survey(db: Database, actor: Actor, survey_id: str, changes: dict[str, Any]) -> Survey:
    """Change name, description, status, language or whether the anonymous link takes
    responses (owner and editors)."""
    check_changeable(changes, EDITABLE_FIELDS)
    with db.uow() as uow:
        survey = get_survey_for(uow.session, survey_id, actor, SurveyAccess.EDIT)
        if "name" in changes:
            changes["name"] = _check_name(changes["name"])
        if "status" in changes:
            _check_status(changes["status"])
        if "anonymous_link" in changes and not isinstance(changes["anonymous_link"], bool):
            raise InvalidInput("anonymous_link must be true or false.")
        audit.record_update(uow.session, actor.id, "survey", survey, changes)
        uow.commit()
    return _reload(db, survey_id)


def delete_survey(db: Database, actor: Actor, survey_id: str) -> None:
    """Delete a survey and everything in it (owner or admin)."""
    with db.uow() as uow:
        survey = get_survey_for(uow.session, survey_id, actor, SurveyAccess.OWN)
        audit.record(uow.session, actor.id, "survey.delete", "survey", survey.id, name=survey.name)
        uow.session.delete(survey)
        uow.commit()


def add_collaborator(
    db: Database, actor: Actor, survey_id: str, email: str, role: str
) -> SurveyCollaborator:
    """Share a survey with another user as editor or viewer (owner or admin)."""
    _check_role(role)
    with db.uow() as uow:
        survey = get_survey_for(uow.session, survey_id, actor, SurveyAccess.OWN)
        user = _user_by_email(uow.session, email)
        if user.id == survey.owner_id:
            raise Conflict(f"{user.email} owns this survey already.", code="already_owner")
        if any(c.user_id == user.id for c in survey.collaborators):
            raise Conflict(
                f"{user.email} is a collaborator already: change their role instead.",
                code="already_collaborator",
            )
        collaborator = SurveyCollaborator(user_id=user.id, role=role)
        survey.collaborators.append(collaborator)
        audit.record(
            uow.session, actor.id, "survey.collaborator.add", "survey", survey.id,
            user=user.email, role=role,
        )  # fmt: skip
        uow.commit()
        collaborator.user  # noqa: B018  (load it before the session closes)
        return collaborator


def change_collaborator_role(
    db: Database, actor: Actor, survey_id: str, user_id: str, role: str
) -> SurveyCollaborator:
    _check_role(role)
    with db.uow() as uow:
        survey = get_survey_for(uow.session, survey_id, actor, SurveyAccess.OWN)
        collaborator = _collaborator(survey, user_id)
        audit.record(
            uow.session, actor.id, "survey.collaborator.role", "survey", survey.id,
            user=collaborator.user.email, before=collaborator.role, after=role,
        )  # fmt: skip
        collaborator.role = role
        uow.commit()
        return collaborator


def remove_collaborator(db: Database, actor: Actor, survey_id: str, user_id: str) -> None:
    """Stop sharing a survey with someone (owner or admin; anyone may remove themselves)."""
    needed = SurveyAccess.VIEW if user_id == actor.id else SurveyAccess.OWN
    with db.uow() as uow:
        survey = get_survey_for(uow.session, survey_id, actor, needed)
        collaborator = _collaborator(survey, user_id)
        survey.collaborators.remove(collaborator)
        audit.record(
            uow.session, actor.id, "survey.collaborator.remove", "survey", survey.id,
            user=collaborator.user.email,
        )  # fmt: skip
        uow.commit()


def survey_access(survey: Survey, actor: Actor) -> str:
    """The actor's role on a survey as a word: owner, editor, viewer (admins count as owner)."""
    return {SurveyAccess.OWN: "owner", SurveyAccess.EDIT: "editor", SurveyAccess.VIEW: "viewer"}[
        access_to(survey, actor)
    ]


def _reload(db: Database, survey_id: str) -> Survey:
    with db.reader() as uow:
        survey = uow.session.get(Survey, survey_id)
        assert survey is not None
        return survey


def _user_by_email(session: Any, email: str) -> User:
    user = session.scalar(select(User).where(User.email == normalize_email(email)))
    if user is None:
        raise NotFound(f"No user with email {email}: create the user first.", code="user_not_found")
    return user


def _collaborator(survey: Survey, user_id: str) -> SurveyCollaborator:
    for collaborator in survey.collaborators:
        if collaborator.user_id == user_id:
            return collaborator
    raise NotFound(
        f"User {user_id!r} is not a collaborator on this survey.", subject="collaborator"
    )


def _check_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise InvalidInput("The survey needs a name.", code="bad_name")
    if len(name) > 200:
        raise InvalidInput("The survey name is too long: at most 200 characters.", code="bad_name")
    return name


def _check_status(status: str) -> None:
    if status not in SURVEY_STATUSES:
        raise InvalidInput(
            f"Unknown status {status!r}: use one of {', '.join(SURVEY_STATUSES)}.",
            code="bad_status",
        )


def _check_role(role: str) -> None:
    if role not in COLLABORATOR_ROLES:
        raise InvalidInput(
            f"Unknown role {role!r}: use one of {', '.join(COLLABORATOR_ROLES)}.", code="bad_role"
        )


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def open_survey(db: Database, actor: Actor, survey_id: str) -> Survey:
    """Open a survey for responses (status `active`); an open survey stays as it is."""
    return _set_status(db, actor, survey_id, SurveyStatus.ACTIVE, "survey.open")


def close_survey(db: Database, actor: Actor, survey_id: str) -> Survey:
    """Close a survey: it takes no more responses (status `closed`); reopen it with open."""
    return _set_status(db, actor, survey_id, SurveyStatus.CLOSED, "survey.close")


def _set_status(db: Database, actor: Actor, survey_id: str, status: str, action: str) -> Survey:
    with db.uow() as uow:
        survey = get_survey_for(uow.session, survey_id, actor, SurveyAccess.EDIT)
        if survey.status != status:
            before = survey.status
            survey.status = status
            audit.record(
                uow.session, actor.id, action, "survey", survey.id,
                before={"status": before}, after={"status": status},
            )  # fmt: skip
            uow.commit()
    return _reload(db, survey_id)
