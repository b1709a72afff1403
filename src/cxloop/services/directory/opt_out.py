"""Opting out: a contact who opts out gets no more invitations.

The opt-out link carries the contact id signed with the secret key (`security.opt_out_token`):
it works without login, stores nothing until used, and is idempotent."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from cxloop import security
from cxloop.db.base import utcnow
from cxloop.db.directory_models import (
    Contact,
)
from cxloop.db.uow import Database
from cxloop.errors import NotFound
from cxloop.services import audit


def opt_out_url(base_url: str, secret_key: str, contact_id: str) -> str:
    """The opt-out link put in invitations: opens without login."""
    return f"{base_url.rstrip('/')}/optout/{security.opt_out_token(secret_key, contact_id)}"


def set_opted_out(session: Session, contact: Contact, opted_out: bool = True) -> bool:
    """Mark the contact opted out (or back in); returns whether anything changed."""
    if contact.opted_out == opted_out:
        return False
    contact.opted_out = opted_out
    contact.opted_out_at = utcnow() if opted_out else None
    session.flush()
    return True


@dataclass(frozen=True)
class OptOutView:
    contact_id: str
    masked_email: str
    opted_out: bool


def opt_out_view(db: Database, secret_key: str, token: str) -> OptOutView:
    """What the opt-out page shows for a token; NotFound if the token is not genuine or its
    contact is gone."""
    with db.reader() as uow:
        return _opt_out_view(_contact_of_token(uow.session, secret_key, token))


def opt_out_with_token(db: Database, secret_key: str, token: str) -> OptOutView:
    """Opt the token's contact out; again and again if asked (idempotent)."""
    with db.uow() as uow:
        contact = _contact_of_token(uow.session, secret_key, token)
        if set_opted_out(uow.session, contact, True):
            audit.record(uow.session, None, "contact.opt_out", "contact", contact.id, via="link")
        uow.commit()
    return _opt_out_view(contact)


def mask_email(email: str) -> str:
    """`jane.doe@example.com` → `j*******@example.com`: enough for its owner to recognise."""
    local, at, domain = email.rpartition("@")
    if not at:
        return "*" * min(len(email), 8)
    return f"{local[:1]}{'*' * max(min(len(local) - 1, 10), 3)}@{domain}"


def _contact_of_token(session: Session, secret_key: str, token: str) -> Contact:
    contact_id = security.contact_id_of_opt_out_token(secret_key, token)
    contact = session.get(Contact, contact_id) if contact_id else None
    if contact is None:
        raise NotFound("This opt-out link is not valid.", code="link_invalid")
    return contact


def _opt_out_view(contact: Contact) -> OptOutView:
    return OptOutView(contact.id, mask_email(contact.email), contact.opted_out)
