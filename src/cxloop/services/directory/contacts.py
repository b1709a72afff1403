"""Contacts: add or update (upsert), read with their history, change, delete, list, opt out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cxloop.db.directory_models import (
    Contact,
    Directory,
    Distribution,
    Invitation,
    MailingList,
    MailingListMember,
)
from cxloop.db.models import Response
from cxloop.db.uow import Database
from cxloop.errors import Conflict, InvalidInput, NotFound
from cxloop.services import audit
from cxloop.services.access import Actor
from cxloop.services.changes import check_changeable
from cxloop.services.directory.opt_out import set_opted_out
from cxloop.services.directory.shared import (
    CONTACT_TEXT_LIMITS,
    ContactFields,
    add_recorded,
    clean_contact_fields,
    contact_for,
    delete_recorded,
    directory_for,
    normalize_email,
)
from cxloop.services.pagination import Page, check_limit, keyset, page_from

HISTORY_LIMIT = 100
EDITABLE_CONTACT_FIELDS = (*CONTACT_TEXT_LIMITS, "email", "external_ref", "embedded_data")


def find_contact(
    session: Session,
    directory_id: str,
    *,
    email: str | None = None,
    external_ref: str | None = None,
) -> Contact | None:
    """The directory's contact with this (normalised) email, or this external reference."""
    if email:
        return session.scalar(
            select(Contact).where(Contact.directory_id == directory_id, Contact.email == email)
        )
    if external_ref:
        return session.scalar(
            select(Contact)
            .where(Contact.directory_id == directory_id, Contact.external_ref == external_ref)
            .order_by(Contact.created_at)
            .limit(1)
        )
    return None


def upsert_contact(
    session: Session, directory: Directory, fields: ContactFields, *, match_on: str = "email"
) -> tuple[Contact, bool]:
    """Add the contact or update the one it matches (by email or external reference).

    Returns (contact, created). Empty fields do not overwrite stored ones; embedded data is
    merged. Matching on the external reference may change a contact's email, unless another
    contact of the directory has that email already (InvalidInput).
    """
    values = clean_contact_fields(fields)
    contact = None
    if match_on == "external_ref" and values["external_ref"]:
        contact = find_contact(session, directory.id, external_ref=values["external_ref"])
    if contact is None:
        contact = find_contact(session, directory.id, email=values["email"])
    if contact is None:
        contact = Contact(directory_id=directory.id, **values)
        session.add(contact)
        session.flush()
        return contact, True
    if values["email"] != contact.email:
        taken = find_contact(session, directory.id, email=values["email"])
        if taken is not None:
            raise InvalidInput(
                f"Another contact of the directory has the email {values['email']}.",
                code="email_taken",
            )
        contact.email = values["email"]
    for name in (*CONTACT_TEXT_LIMITS, "external_ref"):
        if values[name]:
            setattr(contact, name, values[name])
    if values["embedded_data"]:
        contact.embedded_data = {**(contact.embedded_data or {}), **values["embedded_data"]}
    session.flush()
    return contact, False


@dataclass(frozen=True)
class InvitationRecord:
    """An invitation sent (or meant) to a contact, with the distribution's survey and subject."""

    id: str
    distribution_id: str
    survey_id: str
    subject: str
    status: str
    status_reason: str
    created_at: datetime
    sent_at: datetime | None


@dataclass(frozen=True)
class ResponseRecord:
    id: str
    survey_id: str
    finished: bool
    ended_at: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class ContactDetails:
    """A contact, its mailing lists and its history (newest first, capped)."""

    contact: Contact
    mailing_lists: list[MailingList]
    invitations: list[InvitationRecord]
    responses: list[ResponseRecord]


def create_contact(db: Database, actor: Actor, directory_id: str, fields: ContactFields) -> Contact:
    """A new contact; an email the directory has already is a Conflict."""
    values = clean_contact_fields(fields)
    try:
        with db.uow() as uow:
            directory = directory_for(uow.session, actor, directory_id)
            if find_contact(uow.session, directory.id, email=values["email"]) is not None:
                raise _email_taken(values["email"])
            contact = Contact(directory_id=directory.id, **values)
            add_recorded(uow.session, actor, contact, directory_id=directory.id)
            uow.commit()
    except IntegrityError as exc:
        raise _email_taken(values["email"]) from exc
    return contact


def get_contact(db: Database, actor: Actor, contact_id: str) -> Contact:
    with db.reader() as uow:
        return contact_for(uow.session, actor, contact_id)


def contact_details(
    db: Database, actor: Actor, contact_id: str, *, history_limit: int = HISTORY_LIMIT
) -> ContactDetails:
    """The contact with its mailing lists, invitations and responses (newest first)."""
    with db.reader() as uow:
        session = uow.session
        contact = contact_for(session, actor, contact_id)
        lists = list(
            session.scalars(
                select(MailingList)
                .join(MailingListMember, MailingListMember.mailing_list_id == MailingList.id)
                .where(MailingListMember.contact_id == contact.id)
                .order_by(MailingList.name)
            )
        )
        invitation_rows = session.execute(
            select(
                Invitation.id,
                Invitation.distribution_id,
                Distribution.survey_id,
                Distribution.subject,
                Invitation.status,
                Invitation.status_reason,
                Invitation.created_at,
                Invitation.sent_at,
            )
            .join(Distribution, Distribution.id == Invitation.distribution_id)
            .where(Invitation.contact_id == contact.id)
            .order_by(Invitation.created_at.desc(), Invitation.id.desc())
            .limit(history_limit)
        )
        invitations = [InvitationRecord(*row) for row in invitation_rows]
        response_rows = session.execute(
            select(
                Response.id,
                Response.survey_id,
                Response.finished,
                Response.ended_at,
                Response.created_at,
            )
            .where(Response.contact_id == contact.id)
            .order_by(Response.created_at.desc(), Response.id.desc())
            .limit(history_limit)
        )
        responses = [ResponseRecord(*row) for row in response_rows]
    return ContactDetails(contact, lists, invitations, responses)


def find_contact_by_email(db: Database, actor: Actor, directory_id: str, email: str) -> Contact:
    """The contact with this email in one of the actor's directories."""
    email = normalize_email(email)
    with db.reader() as uow:
        directory = directory_for(uow.session, actor, directory_id)
        contact = find_contact(uow.session, directory.id, email=email)
    if contact is None:
        raise NotFound(f"Directory {directory.name!r} has no contact {email}.", subject="contact")
    return contact


def update_contact(db: Database, actor: Actor, contact_id: str, changes: dict[str, Any]) -> Contact:
    """Change some of a contact's fields. Text fields are replaced (null or "" clears them);
    embedded data is merged (a null value removes the field)."""
    check_changeable(changes, EDITABLE_CONTACT_FIELDS)
    embedded_changes = changes.get("embedded_data") or {}
    if not isinstance(embedded_changes, dict):
        raise InvalidInput("embedded_data must be an object.", code="invalid_contact")
    try:
        with db.uow() as uow:
            contact = contact_for(uow.session, actor, contact_id)
            current = {
                name: getattr(contact, name) or ""
                for name in (*CONTACT_TEXT_LIMITS, "email", "external_ref")
            }
            given = {k: ("" if v is None else v) for k, v in changes.items() if k in current}
            embedded = dict(contact.embedded_data or {})
            for name, value in embedded_changes.items():
                if value is None:
                    embedded.pop(name, None)
                else:
                    embedded[name] = value
            values = clean_contact_fields(
                ContactFields(**(current | given), embedded_data=embedded)
            )
            if values["email"] != contact.email and find_contact(
                uow.session, contact.directory_id, email=values["email"]
            ):
                raise _email_taken(values["email"])
            for name, value in values.items():
                setattr(contact, name, value)
            uow.session.flush()
            uow.commit()
    except IntegrityError as exc:
        raise _email_taken(str(changes.get("email", ""))) from exc
    return contact


def delete_contact(db: Database, actor: Actor, contact_id: str) -> None:
    """Delete a contact, its list memberships and its invitations (responses stay)."""
    with db.uow() as uow:
        contact = contact_for(uow.session, actor, contact_id)
        delete_recorded(uow.session, actor, contact, directory_id=contact.directory_id)
        uow.commit()


def list_contacts(
    db: Database,
    actor: Actor,
    directory_id: str,
    *,
    limit: int = 50,
    cursor: str | None = None,
    email_contains: str | None = None,
    mailing_list_id: str | None = None,
    opted_out: bool | None = None,
) -> Page[Contact]:
    """A directory's contacts, oldest first, one page at a time."""
    check_limit(limit)
    query = select(Contact).where(Contact.directory_id == directory_id)
    if email_contains:
        pattern = f"%{_escape_like(email_contains.strip().lower())}%"
        query = query.where(Contact.email.like(pattern, escape="\\"))
    if opted_out is not None:
        query = query.where(Contact.opted_out.is_(opted_out))
    if mailing_list_id:
        members = select(MailingListMember.contact_id).where(
            MailingListMember.mailing_list_id == mailing_list_id
        )
        query = query.where(Contact.id.in_(members))
    query = keyset(
        query, Contact.created_at, Contact.id, limit=limit, cursor=cursor, oldest_first=True
    )
    with db.reader() as uow:
        directory_for(uow.session, actor, directory_id)
        if mailing_list_id:
            mailing_list = uow.session.get(MailingList, mailing_list_id)
            if mailing_list is None or mailing_list.directory_id != directory_id:
                raise NotFound(
                    f"The directory has no mailing list {mailing_list_id!r}.",
                    subject="mailing_list",
                )
        rows = list(uow.session.scalars(query))
    return page_from(rows, limit, lambda row: (row.created_at, row.id))


def set_contact_opt_out(
    db: Database, actor: Actor, contact_id: str, opted_out: bool = True
) -> Contact:
    """Opt a contact out of invitations (or back in); doing it twice changes nothing."""
    with db.uow() as uow:
        contact = contact_for(uow.session, actor, contact_id)
        if set_opted_out(uow.session, contact, opted_out):
            audit.record(
                uow.session, actor.id, "contact.opt_out" if opted_out else "contact.opt_in",
                "contact", contact.id,
            )  # fmt: skip
        uow.commit()
    return contact


def _email_taken(email: str) -> Conflict:
    return Conflict(
        f"The directory has a contact with the email {email} already.", code="email_taken"
    )


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
