"""Signed links: survey links with embedded data that another system embeds (a CRM email, a
portal page), signed with the survey's key so that nobody can change what they carry.

Editors and owners make them (`create_signed_link`) and can replace the survey's key
(`rotate_signing_key`), which invalidates every signed link made before. The key is random,
made on first use and kept encrypted at rest (an EncryptedText column). The respondent's pages
check a link with `check_signed_link`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cxloop.db.base import utcnow
from cxloop.db.models import Survey
from cxloop.db.uow import Database
from cxloop.domain import signed_links
from cxloop.domain.survey_content import MAX_TEXT, SOURCES_BY_CHANNEL
from cxloop.errors import Expired, Forbidden, InvalidInput
from cxloop.services import audit
from cxloop.services.access import Actor, SurveyAccess, get_survey_for
from cxloop.services.survey_content import content_of

MAX_LIFETIME = timedelta(days=366)
MAX_FIELDS = 100
# Query parameters the survey page reads itself: a personal link's token, a signed link's parts.
RESERVED_PARAMS = frozenset({"t", signed_links.EXPIRES_PARAM, signed_links.SIGNATURE_PARAM})


class SignedLinkRefused(Forbidden):
    """A signed link was changed, made with a key since replaced, or is malformed."""

    code = "signed_link_invalid"


class SignedLinkExpired(Expired):
    """A signed link's time is over."""

    code = "link_expired"


@dataclass(frozen=True)
class SignedLink:
    """A signed link made for someone: its address and when it stops working."""

    url: str
    expires_at: datetime


def create_signed_link(
    db: Database,
    actor: Actor,
    survey_id: str,
    embedded_data: Any,
    *,
    expires_at: datetime | None = None,
    expires_in_s: int | None = None,
    base_url: str | None = None,
) -> SignedLink:
    """A signed link carrying `embedded_data` (editors and up), valid until the expiry.

    The expiry is `expires_at` (with a time zone) or `expires_in_s` seconds from now, at most
    366 days away. Only declared `query` and `personal_link` fields may be set; `server` fields
    come only from the API and workflows.
    """
    now = utcnow()
    until = _expiry(now, expires_at, expires_in_s)
    with db.uow() as uow:
        survey = get_survey_for(uow.session, survey_id, actor, SurveyAccess.EDIT)
        values = _checked_values(survey, embedded_data)
        key = survey.link_signing_key
        if key is None:
            key = signed_links.new_signing_key()
            survey.link_signing_key = key
        items = signed_links.signed_query(key, survey.id, values, int(until.timestamp()))
        audit.record(
            uow.session, actor.id, "survey.signed_link", "survey", survey.id,
            fields=sorted(values), expires_at=until.isoformat(),
        )  # fmt: skip
        uow.commit()
    path = f"/s/{quote(survey_id, safe='')}?" + urlencode(items, quote_via=quote)
    return SignedLink(url=(base_url or "").rstrip("/") + path, expires_at=until)


def rotate_signing_key(db: Database, actor: Actor, survey_id: str) -> None:
    """Replace the survey's signing key (editors and up): every signed link made before stops
    working at once; personal links and the anonymous link are not affected."""
    with db.uow() as uow:
        survey = get_survey_for(uow.session, survey_id, actor, SurveyAccess.EDIT)
        uow.session.execute(
            update(Survey)
            .where(Survey.id == survey.id)
            .values(link_signing_key=signed_links.new_signing_key())
        )
        audit.record(uow.session, actor.id, "survey.rotate_link_key", "survey", survey.id)
        uow.commit()


def check_signed_link(
    session: Session, survey_id: str, items: Iterable[tuple[str, str]], now: float | None = None
) -> dict[str, str]:
    """The values a signed link carries, once its signature and expiry check out.

    Raises SignedLinkRefused or SignedLinkExpired with words for the respondent.
    """
    key = session.scalar(select(Survey.link_signing_key).where(Survey.id == survey_id))
    try:
        if key is None:
            raise signed_links.SignedLinkError("invalid", "the survey has no signing key")
        return signed_links.verify(key, survey_id, items, time.time() if now is None else now)
    except signed_links.SignedLinkError as exc:
        if exc.reason == "expired":
            raise SignedLinkExpired("This survey link has expired.") from None
        raise SignedLinkRefused(
            "This survey link is not valid: it was changed after it was made, or it was "
            "withdrawn. Ask whoever sent it for a new one."
        ) from None


def _expiry(now: datetime, expires_at: datetime | None, expires_in_s: int | None) -> datetime:
    if (expires_at is None) == (expires_in_s is None):
        raise InvalidInput(
            "Give the link's expiry as expires_at or expires_in_s (one of them).",
            code="bad_expiry",
        )
    if expires_in_s is not None:
        if isinstance(expires_in_s, bool) or not isinstance(expires_in_s, int) or expires_in_s < 1:
            raise InvalidInput("expires_in_s must be a whole number of seconds, at least 1.",
                               code="bad_expiry")  # fmt: skip
        if expires_in_s > MAX_LIFETIME.total_seconds():
            raise InvalidInput(_too_far(), code="bad_expiry")
        return now + timedelta(seconds=expires_in_s)
    assert expires_at is not None
    if expires_at.tzinfo is None:
        raise InvalidInput("expires_at must carry a time zone.", code="bad_expiry")
    if expires_at <= now:
        raise InvalidInput("expires_at is in the past.", code="bad_expiry")
    if expires_at - now > MAX_LIFETIME:
        raise InvalidInput(_too_far(), code="bad_expiry")
    return expires_at.astimezone(UTC).replace(microsecond=0)


def _too_far() -> str:
    return (
        f"A signed link lives at most {MAX_LIFETIME.days} days; make a new one later (or rotate "
        "the survey's key to withdraw links early)."
    )


def _checked_values(survey: Survey, embedded_data: Any) -> dict[str, str]:
    if not isinstance(embedded_data, Mapping):
        raise InvalidInput("embedded_data must be an object of field names and values.",
                           code="invalid_embedded_data")  # fmt: skip
    if len(embedded_data) > MAX_FIELDS:
        raise InvalidInput(f"A signed link carries at most {MAX_FIELDS} fields.",
                           code="invalid_embedded_data")  # fmt: skip
    sources = content_of(survey).embedded_data_sources()
    allowed = SOURCES_BY_CHANNEL["signed_link"]
    problems: list[dict[str, Any]] = []
    values: dict[str, str] = {}
    for name, value in embedded_data.items():
        where = f"embedded_data.{str(name)[:60]}"
        if name in RESERVED_PARAMS:
            message = f"{name!r} is a parameter of the link itself and cannot carry a value"
        elif name not in sources:
            message = f"{str(name)[:60]!r} is not an embedded data field of this survey"
        elif sources[name] not in allowed:
            message = (
                f"{name!r} has the source server: only the API and workflows set it, never a link"
            )
        elif not isinstance(value, str):
            message = f"the value of {name!r} must be text"
        elif len(value) > MAX_TEXT or "\x00" in value:
            message = f"the value of {name!r} is too long or holds a NUL character"
        else:
            values[name] = value
            continue
        problems.append({"field": where, "message": message})
    if problems:
        raise InvalidInput(
            "The link's embedded data is not valid: "
            + "; ".join(p["message"] for p in problems[:5]),
            code="invalid_embedded_data",
            details=problems,
        )
    return values
