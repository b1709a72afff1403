"""Who may do what to a survey. Every service that touches a survey asks here first."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from sqlalchemy.orm import Session

from cxloop.db.models import Survey, User
from cxloop.errors import Forbidden, NotFound


@dataclass(frozen=True)
class Actor:
    """The authenticated user behind a request or a command."""

    id: str
    email: str
    is_admin: bool

    @classmethod
    def of(cls, user: User) -> Actor:
        return cls(id=user.id, email=user.email, is_admin=user.is_admin)


class SurveyAccess(IntEnum):
    """What an actor may do to one survey; higher includes lower."""

    NONE = 0
    VIEW = 1  # viewer
    EDIT = 2  # editor
    OWN = 3  # owner, or an admin


def access_to(survey: Survey, actor: Actor) -> SurveyAccess:
    """The actor's access to `survey`."""
    if actor.is_admin or survey.owner_id == actor.id:
        return SurveyAccess.OWN
    for collaborator in survey.collaborators:
        if collaborator.user_id == actor.id:
            return SurveyAccess.EDIT if collaborator.role == "editor" else SurveyAccess.VIEW
    return SurveyAccess.NONE


def get_survey_for(session: Session, survey_id: str, actor: Actor, needed: SurveyAccess) -> Survey:
    """The survey, if the actor has `needed` access.

    Someone with no access at all gets NotFound, so that survey ids cannot be probed; someone
    who can see it but not do this gets Forbidden.
    """
    survey = session.get(Survey, survey_id)
    if survey is None:
        raise NotFound(f"No survey {survey_id!r}.", subject="survey")
    granted = access_to(survey, actor)
    if granted == SurveyAccess.NONE:
        raise NotFound(f"No survey {survey_id!r}.", subject="survey")
    if granted < needed:
        what = {SurveyAccess.EDIT: "change", SurveyAccess.OWN: "manage"}[needed]
        raise Forbidden(
            f"You may only view survey {survey_id!r}; to {what} it ask its owner "
            f"({survey.owner.email}) for the "
            f"{'editor role' if needed == SurveyAccess.EDIT else 'ownership'}."
        )
    return survey
