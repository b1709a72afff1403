"""The directory: directories, mailing lists and contacts.

The session-level functions (`directory_of_owner`, `upsert_contact`, `add_to_mailing_list`) run
inside a caller's transaction: the directory task of a workflow calls them while it settles its
task run, and the API calls them through the use cases below. Opt-out links carry a signed
contact id, so they work without login and without storing anything.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select
from sqlalchemy.orm import Session

from cxloop.db.base import utcnow
from cxloop.db.directory_models import Contact, Directory, MailingList, MailingListMember
from cxloop.errors import InvalidInput, NotFound

DEFAULT_DIRECTORY = "Default"
CONTACT_TEXT_LIMITS = {"first_name": 100, "last_name": 100, "phone": 40, "language": 16}
MAX_EXTERNAL_REF = 100
MAX_EMBEDDED_DATA_FIELDS = 100


@dataclass(frozen=True)
class ContactFields:
    """A contact as given (by a task, an import row or the API), before it is checked."""

    email: str
    first_name: str = ""
    last_name: str = ""
    phone: str = ""
    language: str = ""
    external_ref: str = ""
    embedded_data: dict[str, Any] = field(default_factory=dict)


def normalize_email(raw: str) -> str:
    """The address as stored: trimmed, lower-cased, checked. Raises InvalidInput."""
    text = (raw or "").strip()
    if not text:
        raise InvalidInput("The contact has no email address.", code="invalid_email")
    if any(char in text for char in "\r\n\x00") or len(text) > 320:
        raise InvalidInput(f"{text[:60]!r} is not an email address.", code="invalid_email")
    try:
        checked = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidInput(
            f"{text[:60]!r} is not an email address: {exc}", code="invalid_email"
        ) from None
    return checked.normalized.lower()


def clean_contact_fields(fields: ContactFields) -> dict[str, Any]:
    """The columns of a contact from `fields`: email normalised, text one line and within its
    length, embedded data flat (names to text). Raises InvalidInput naming the problem."""
    values: dict[str, Any] = {"email": normalize_email(fields.email)}
    for name, limit in CONTACT_TEXT_LIMITS.items():
        text = _one_line(getattr(fields, name))
        if len(text) > limit:
            raise InvalidInput(
                f"The contact's {name} is longer than {limit} characters.", code="invalid_contact"
            )
        values[name] = text
    external_ref = _one_line(fields.external_ref)
    if len(external_ref) > MAX_EXTERNAL_REF:
        raise InvalidInput(
            f"The contact's external_ref is longer than {MAX_EXTERNAL_REF} characters.",
            code="invalid_contact",
        )
    values["external_ref"] = external_ref or None
    if len(fields.embedded_data) > MAX_EMBEDDED_DATA_FIELDS:
        raise InvalidInput(
            f"A contact holds at most {MAX_EMBEDDED_DATA_FIELDS} embedded data fields.",
            code="invalid_contact",
        )
    embedded: dict[str, Any] = {}
    for name, value in fields.embedded_data.items():
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            raise InvalidInput(
                "Embedded data field names must be text of 1 to 200 characters.",
                code="invalid_contact",
            )
        if value is not None and not isinstance(value, str | int | float | bool):
            raise InvalidInput(
                f"Embedded data field {name!r} must hold text, a number or a boolean.",
                code="invalid_contact",
            )
        embedded[name] = value
    values["embedded_data"] = embedded
    return values


def _one_line(value: Any) -> str:
    text = "" if value is None else str(value)
    return " ".join(text.replace("\x00", "").split())


def directory_of_owner(
    session: Session, owner_id: str, name_or_id: str, *, create_missing: bool = True
) -> Directory:
    """The owner's directory with this id or name; made (by name) when missing and allowed."""
    directory = session.scalar(
        select(Directory).where(Directory.owner_id == owner_id, Directory.id == name_or_id)
    ) or session.scalar(
        select(Directory).where(Directory.owner_id == owner_id, Directory.name == name_or_id)
    )
    if directory is not None:
        return directory
    if not create_missing or name_or_id.startswith("DR_"):
        raise NotFound(f"No directory {name_or_id!r}.")
    directory = Directory(owner_id=owner_id, name=name_or_id)
    session.add(directory)
    session.flush()
    return directory


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


def add_to_mailing_list(
    session: Session, directory: Directory, list_name_or_id: str, contact: Contact
) -> MailingList:
    """Put the contact on the directory's mailing list (made when missing); idempotent."""
    mailing_list = session.scalar(
        select(MailingList).where(
            MailingList.directory_id == directory.id, MailingList.id == list_name_or_id
        )
    ) or session.scalar(
        select(MailingList).where(
            MailingList.directory_id == directory.id, MailingList.name == list_name_or_id
        )
    )
    if mailing_list is None:
        mailing_list = MailingList(directory_id=directory.id, name=_one_line(list_name_or_id))
        session.add(mailing_list)
        session.flush()
    member = session.get(MailingListMember, (mailing_list.id, contact.id))
    if member is None:
        session.add(MailingListMember(mailing_list_id=mailing_list.id, contact_id=contact.id))
        session.flush()
    return mailing_list


# --- opt-out links


def opt_out_token(secret_key: str, contact_id: str) -> str:
    """The token of a contact's opt-out link: the contact id and its signature."""
    return f"{contact_id}.{_signature(secret_key, contact_id)}"


def contact_id_of_opt_out_token(secret_key: str, token: str) -> str | None:
    """The contact id an opt-out token was made for, or None if it is not genuine."""
    contact_id, _, signature = (token or "").partition(".")
    if not contact_id or len(token) > 200:
        return None
    if not hmac.compare_digest(signature, _signature(secret_key, contact_id)):
        return None
    return contact_id


def opt_out_url(base_url: str, secret_key: str, contact_id: str) -> str:
    """The opt-out link put in invitations: opens without login."""
    return f"{base_url.rstrip('/')}/optout/{opt_out_token(secret_key, contact_id)}"


def _signature(secret_key: str, contact_id: str) -> str:
    digest = hmac.new(secret_key.encode(), f"opt-out:{contact_id}".encode(), hashlib.sha256)
    return digest.hexdigest()[:32]


def set_opted_out(session: Session, contact: Contact, opted_out: bool = True) -> bool:
    """Mark the contact opted out (or back in); returns whether anything changed."""
    if contact.opted_out == opted_out:
        return False
    contact.opted_out = opted_out
    contact.opted_out_at = utcnow() if opted_out else None
    session.flush()
    return True
