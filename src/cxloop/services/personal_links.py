"""Personal links: single-use survey links bound to a contact and embedded data.

The directory task calls `add_personal_link` inside its own transaction and puts the link in
its email; `create_personal_link` is the same in a transaction of its own. The token in the
link is random; only its SHA-256 is stored, so a database dump opens no survey.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.orm import Session

from cxloop.db.base import utcnow
from cxloop.db.models import PersonalLink, Survey
from cxloop.db.uow import Database
from cxloop.domain.answers import validate_response
from cxloop.errors import Conflict, Expired, InvalidInput, NotFound
from cxloop.services.survey_content import content_of

MAX_TOKEN_LENGTH = 100


class LinkExpired(Expired):
    """The personal link's time is over."""

    code = "link_expired"


def create_personal_link(
    db: Database,
    survey_id: str,
    embedded_data: Mapping[str, Any],
    *,
    contact_id: str | None = None,
    distribution_id: str | None = None,
    expires_at: datetime | None = None,
    base_url: str | None = None,
) -> tuple[str, str]:
    """A new personal link: returns (token, link URL).

    `embedded_data` may only name the survey's declared embedded data fields. Without
    `base_url` the URL is a path (`/s/SV_...?t=...`). The token is shown only here.
    """
    with db.uow() as uow:
        survey = uow.session.get(Survey, survey_id)
        if survey is None:
            raise NotFound(f"No survey {survey_id!r}.", subject="survey")
        token, _link = add_personal_link(
            uow.session,
            survey,
            embedded_data,
            contact_id=contact_id,
            distribution_id=distribution_id,
            expires_at=expires_at,
        )
        uow.commit()
    return token, link_url(survey_id, token, base_url)


def add_personal_link(
    session: Session,
    survey: Survey,
    embedded_data: Mapping[str, Any],
    *,
    contact_id: str | None = None,
    distribution_id: str | None = None,
    expires_at: datetime | None = None,
) -> tuple[str, PersonalLink]:
    """Add a new personal link to the caller's transaction: returns (token, link row).

    The same checks as `create_personal_link`; raises InvalidInput naming the problem.
    """
    if expires_at is not None:
        if expires_at.tzinfo is None:
            raise InvalidInput("expires_at must carry a time zone.", code="bad_expiry")
        if expires_at <= utcnow():
            raise InvalidInput("expires_at is in the past.", code="bad_expiry")
    for name, value in (("contact_id", contact_id), ("distribution_id", distribution_id)):
        if value is not None and not 1 <= len(value) <= 20:
            raise InvalidInput(f"{name} must be 1 to 20 characters.", code="bad_id")
    problems = validate_response(content_of(survey), {}, dict(embedded_data))
    problems = [p for p in problems if p.qid is None]  # only embedded data is checked here
    if problems:
        raise InvalidInput(
            "The link's embedded data is not valid: " + "; ".join(p.message for p in problems[:5]),
            code="invalid_embedded_data",
            details=[p.as_dict() for p in problems],
        )
    token = secrets.token_urlsafe(24)
    link = PersonalLink(
        token_hash=hash_token(token),
        survey_id=survey.id,
        contact_id=contact_id,
        distribution_id=distribution_id,
        embedded_data=dict(embedded_data),
        expires_at=expires_at,
    )
    session.add(link)
    session.flush()
    return token, link


def link_url(survey_id: str, token: str | None = None, base_url: str | None = None) -> str:
    """The address of a survey's page: anonymous, or personal with a token."""
    path = f"/s/{quote(survey_id, safe='')}" + (f"?t={quote(token, safe='')}" if token else "")
    return (base_url or "").rstrip("/") + path


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def find_link(
    session: Session, survey_id: str, token: str, *, for_update: bool = False
) -> PersonalLink:
    """The usable link with this token for this survey; a reason in words otherwise.

    With `for_update` the row is locked (PostgreSQL) so that two submits of the same link
    cannot both finish it; SQLite's writers are serialised already.
    """
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise NotFound("This survey link is not valid. Check that it was copied whole.",
                       code="link_invalid")  # fmt: skip
    query = select(PersonalLink).where(PersonalLink.token_hash == hash_token(token))
    if for_update:
        query = query.with_for_update()
    link = session.scalar(query)
    if link is None or link.survey_id != survey_id:
        raise NotFound("This survey link is not valid. Check that it was copied whole.",
                       code="link_invalid")  # fmt: skip
    check_usable(link)
    return link


def get_link(session: Session, link_id: str, *, for_update: bool = False) -> PersonalLink:
    """The usable link with this id (from a respondent's signed form state)."""
    query = select(PersonalLink).where(PersonalLink.id == link_id)
    if for_update:
        query = query.with_for_update()
    link = session.scalar(query)
    if link is None:
        raise NotFound("This survey link is no longer valid.", code="link_invalid")
    check_usable(link)
    return link


def check_usable(link: PersonalLink, now: datetime | None = None) -> None:
    """Refuse a link that was used up or has expired."""
    if link.used_at is not None:
        raise Conflict(
            "You have already answered this survey with this link. Thank you!",
            code="already_answered",
        )
    if link.expires_at is not None and link.expires_at <= (now or utcnow()):
        raise LinkExpired("This survey link has expired.")
