"""Which of the owner's connections a survey's editors may pick: the owner's explicit grants.

The owner (or an admin) sees and picks all of the owner's connections. Editors see and pick
only those the owner has allowed for this survey, one grant per connection; viewers pick none.
Grants end when the survey changes hands (`drop_grants`), and with the connection.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session, load_only

from cxloop.db.models import Connection, Survey
from cxloop.db.ownership_models import SurveyConnectionGrant
from cxloop.db.uow import Database
from cxloop.errors import Forbidden, NotFound
from cxloop.services import audit
from cxloop.services.access import Actor, SurveyAccess, access_to, get_survey_for


@dataclass(frozen=True)
class Grant:
    """One of the owner's connections, allowed for a survey's editors."""

    connection_id: str
    connection_name: str
    connection_type: str
    connection_status: str
    granted_by: str
    granted_at: datetime


def owner_connections(session: Session, owner_id: str) -> list[Connection]:
    """A user's connections, oldest first, with what choosing needs (tokens not decrypted)."""
    query = (
        select(Connection)
        .options(
            load_only(
                Connection.id, Connection.name, Connection.type, Connection.status,
                Connection.status_reason, Connection.created_at,
            )
        )
        .where(Connection.owner_id == owner_id)
        .order_by(Connection.created_at, Connection.id)
    )  # fmt: skip
    return list(session.scalars(query))


def granted_connection_ids(session: Session, survey_id: str) -> set[str]:
    """The ids of the connections the survey's owner allowed for it."""
    return set(
        session.scalars(
            select(SurveyConnectionGrant.connection_id).where(
                SurveyConnectionGrant.survey_id == survey_id
            )
        )
    )


def pickable_connections(
    session: Session, survey: Survey, access: SurveyAccess
) -> list[Connection]:
    """The connections someone with `access` may pick for the survey's tasks: all of the
    owner's for the owner (and admins), the granted ones for editors, none for viewers."""
    owned = owner_connections(session, survey.owner_id)
    if access >= SurveyAccess.OWN:
        return owned
    if access < SurveyAccess.EDIT:
        return []
    granted = granted_connection_ids(session, survey.id)
    return [c for c in owned if c.id in granted]


def list_grants(db: Database, actor: Actor, survey_id: str) -> list[Grant]:
    """The connections the owner allowed for this survey (editors and up)."""
    with db.reader() as uow:
        survey = get_survey_for(uow.session, survey_id, actor, SurveyAccess.EDIT)
        rows = uow.session.scalars(
            select(SurveyConnectionGrant)
            .join(Connection, Connection.id == SurveyConnectionGrant.connection_id)
            .where(
                SurveyConnectionGrant.survey_id == survey.id,
                Connection.owner_id == survey.owner_id,
            )
            .order_by(SurveyConnectionGrant.granted_at, SurveyConnectionGrant.connection_id)
        )
        return [_grant(row) for row in rows]


def grant_connection(db: Database, actor: Actor, survey_id: str, connection: str) -> Grant:
    """Allow the survey's editors to pick one of the owner's connections (by id or name).
    Granting again changes nothing."""
    with db.uow() as uow:
        survey = _owned_survey(uow.session, actor, survey_id)
        found = _owner_connection(uow.session, survey, connection)
        row = uow.session.get(SurveyConnectionGrant, (survey.id, found.id))
        if row is None:
            row = SurveyConnectionGrant(
                survey_id=survey.id, connection_id=found.id, granted_by=actor.id
            )
            uow.session.add(row)
            audit.record(
                uow.session, actor.id, "survey.connection.grant", "survey", survey.id,
                connection_id=found.id, connection=found.name,
            )  # fmt: skip
            uow.session.flush()
        grant = _grant(row)
        uow.commit()
    return grant


def revoke_connection(db: Database, actor: Actor, survey_id: str, connection: str) -> None:
    """Take back a grant: editors can no longer pick that connection for this survey.

    Tasks already saved with it keep running (the owner's connection, for the owner's
    survey); an editor can no longer save a workflow that uses it.
    """
    with db.uow() as uow:
        survey = _owned_survey(uow.session, actor, survey_id)
        found = _owner_connection(uow.session, survey, connection)
        row = uow.session.get(SurveyConnectionGrant, (survey.id, found.id))
        if row is None:
            raise NotFound(
                f"Connection {found.name!r} is not allowed for survey {survey.id}: nothing to "
                "revoke.",
                code="grant_not_found",
            )
        uow.session.delete(row)
        audit.record(
            uow.session, actor.id, "survey.connection.revoke", "survey", survey.id,
            connection_id=found.id, connection=found.name,
        )  # fmt: skip
        uow.commit()


def drop_grants(session: Session, actor_id: str | None, survey: Survey, why: str) -> int:
    """End every grant of a survey (it changes hands), each with an audit entry; how many."""
    rows = list(
        session.scalars(
            select(SurveyConnectionGrant).where(SurveyConnectionGrant.survey_id == survey.id)
        )
    )
    for row in rows:
        audit.record(
            session, actor_id, "survey.connection.revoke", "survey", survey.id,
            connection_id=row.connection_id, connection=row.connection.name, reason=why,
        )  # fmt: skip
    session.execute(
        delete(SurveyConnectionGrant).where(SurveyConnectionGrant.survey_id == survey.id)
    )
    return len(rows)


def _owned_survey(session: Session, actor: Actor, survey_id: str) -> Survey:
    survey = get_survey_for(session, survey_id, actor, SurveyAccess.EDIT)
    if access_to(survey, actor) < SurveyAccess.OWN:
        raise Forbidden(
            f"Only the owner of survey {survey_id} ({survey.owner.email}) decides which of "
            "their connections its editors may use."
        )
    return survey


def _owner_connection(session: Session, survey: Survey, reference: str) -> Connection:
    found = session.scalars(
        select(Connection).where(
            Connection.owner_id == survey.owner_id,
            or_(Connection.id == reference, Connection.name == reference),
        )
    ).all()
    match = next((c for c in found if c.id == reference), None) or next(
        (c for c in found if c.name == reference), None
    )
    if match is None:
        raise NotFound(
            f"{survey.owner.email} has no connection {reference!r}: only the owner's own "
            "connections can be allowed for their survey.",
            code="connection_not_found",
        )
    return match


def _grant(row: SurveyConnectionGrant) -> Grant:
    return Grant(
        connection_id=row.connection_id,
        connection_name=row.connection.name,
        connection_type=row.connection.type,
        connection_status=row.connection.status,
        granted_by=row.granted_by,
        granted_at=row.granted_at,
    )
