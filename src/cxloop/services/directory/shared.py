"""What every part of the directory checks and looks up: contact fields, names, emails, and
who may use a directory (its owner, or an admin; to anyone else it does not exist, so ids
cannot be probed)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cxloop.db.directory_models import (
    Contact,
    Directory,
    MailingList,
)
from cxloop.domain import emails
from cxloop.errors import InvalidInput, NotFound
from cxloop.services import audit
from cxloop.services.access import Actor
from cxloop.services.changes import check_line_name

DEFAULT_DIRECTORY = "Default"
CONTACT_TEXT_LIMITS = MappingProxyType(
    {"first_name": 100, "last_name": 100, "phone": 40, "language": 16}
)
MAX_EXTERNAL_REF = 100
MAX_EMBEDDED_DATA_FIELDS = 100
MAX_FREQUENCY_LIMIT = 1_000
MAX_FREQUENCY_DAYS = 3_650
# A directory's id: its name may not have this shape, so that a workflow's or a command's
# "directory" (an id or a name) can never mean two directories.
DIRECTORY_ID_SHAPE = re.compile(r"DR_[A-Za-z0-9]{15}")


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
    """A contact's address as stored (`domain.emails`: one form for users and contacts).
    Raises InvalidInput."""
    try:
        return emails.normalize_email(raw)
    except emails.NotAnEmail as exc:
        if exc.flaw == "empty":
            raise InvalidInput("The contact has no email address.", code="invalid_email") from None
        if exc.flaw == "invalid":
            message = f"{exc.text[:60]!r} is not an email address: {exc.reason}"
        else:
            message = f"{exc.text[:60]!r} is not an email address."
        raise InvalidInput(message, code="invalid_email") from None


def clean_contact_fields(fields: ContactFields) -> dict[str, Any]:
    """The columns of a contact from `fields`: email normalised, text one line and within its
    length, embedded data flat (names to text). Raises InvalidInput naming the problem."""
    values: dict[str, Any] = {"email": normalize_email(fields.email)}
    for name, limit in CONTACT_TEXT_LIMITS.items():
        text = one_line(getattr(fields, name))
        if len(text) > limit:
            raise InvalidInput(
                f"The contact's {name} is longer than {limit} characters.", code="invalid_contact"
            )
        values[name] = text
    external_ref = one_line(fields.external_ref)
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


def one_line(value: Any) -> str:
    text = "" if value is None else str(value)
    return " ".join(text.replace("\x00", "").split())


def _usable_by(actor: Actor, directory: Directory | None) -> bool:
    """Whether `actor` may use `directory` (and what is in it): its owner, or an admin."""
    return directory is not None and (actor.is_admin or directory.owner_id == actor.id)


def directory_for(session: Session, actor: Actor, directory_id: str) -> Directory:
    """The directory `actor` may use, by id; NotFound otherwise (not even that it exists)."""
    directory = session.get(Directory, directory_id)
    if directory is None or not _usable_by(actor, directory):
        raise NotFound(f"No directory {directory_id!r}.", subject="directory")
    return directory


def mailing_list_for(session: Session, actor: Actor, mailing_list_id: str) -> MailingList:
    """The mailing list, by id, in a directory `actor` may use; NotFound otherwise."""
    mailing_list = session.get(MailingList, mailing_list_id)
    if mailing_list is None or not _usable_by(
        actor, session.get(Directory, mailing_list.directory_id)
    ):
        raise NotFound(f"No mailing list {mailing_list_id!r}.", subject="mailing_list")
    return mailing_list


def mailing_list_named(session: Session, directory_id: str, name: str) -> MailingList | None:
    return session.scalar(
        select(MailingList).where(
            MailingList.directory_id == directory_id, MailingList.name == name
        )
    )


def contact_for(session: Session, actor: Actor, contact_id: str) -> Contact:
    """The contact, by id, in a directory `actor` may use; NotFound otherwise."""
    contact = session.get(Contact, contact_id)
    if contact is None or not _usable_by(actor, session.get(Directory, contact.directory_id)):
        raise NotFound(f"No contact {contact_id!r}.", subject="contact")
    return contact


def add_recorded(
    session: Session, actor: Actor, thing: Directory | Contact, **details: Any
) -> None:
    """Add a new directory or contact in the caller's transaction, with its audit entry
    (`directory.create`, `contact.create`). Flushed first, so that its id and any unique
    constraint it breaks are known here."""
    session.add(thing)
    session.flush()
    kind = _kind(thing)
    audit.record(session, actor.id, f"{kind}.create", kind, thing.id, **details)


def delete_recorded(
    session: Session, actor: Actor, thing: Directory | Contact, **details: Any
) -> None:
    """Delete a directory or a contact in the caller's transaction, with its audit entry
    (`directory.delete`, `contact.delete`)."""
    kind = _kind(thing)
    audit.record(session, actor.id, f"{kind}.delete", kind, thing.id, **details)
    session.delete(thing)


def _kind(thing: Directory | Contact) -> str:
    """What the audit log calls the thing (its entries' action prefix and subject type)."""
    return "directory" if isinstance(thing, Directory) else "contact"


def check_name(name: Any, what: str) -> str:
    text = check_line_name(name, what)
    if what == "directory" and DIRECTORY_ID_SHAPE.fullmatch(text):
        raise InvalidInput(
            f"{text!r} reads as a directory id: give the directory a name that does not.",
            code="bad_name",
        )
    return text


def check_frequency(limit: Any, days: Any) -> None:
    if limit is None and days is None:
        return
    ok = all(
        isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= cap
        for value, cap in ((limit, MAX_FREQUENCY_LIMIT), (days, MAX_FREQUENCY_DAYS))
    )
    if not ok:
        raise InvalidInput(
            "A frequency rule needs both frequency_limit (1 to "
            f"{MAX_FREQUENCY_LIMIT:,} invitations) and frequency_days (1 to "
            f"{MAX_FREQUENCY_DAYS:,} days); set both to null for no rule.",
            code="bad_frequency_rule",
        )
