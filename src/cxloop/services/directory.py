"""The directory: directories, mailing lists and contacts.

The session-level functions (`directory_of_owner`, `upsert_contact`, `add_to_mailing_list`) run
inside a caller's transaction: the directory task of a workflow calls them while it settles its
task run, and the API calls them through the use cases below. Opt-out links carry a signed
contact id, so they work without login and without storing anything.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cxloop.db.base import utcnow
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
from cxloop.domain import contacts_import
from cxloop.errors import Conflict, CxloopError, InvalidInput, NotFound
from cxloop.services import audit
from cxloop.services.access import Actor
from cxloop.services.pagination import Page, check_limit, decode_cursor, encode_cursor

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
    # Looked up by the name it is stored under, so " VIP" finds the "VIP" it made before.
    name = _one_line(list_name_or_id)
    mailing_list = session.scalar(
        select(MailingList).where(
            MailingList.directory_id == directory.id, MailingList.id == list_name_or_id
        )
    ) or session.scalar(
        select(MailingList).where(
            MailingList.directory_id == directory.id, MailingList.name == name
        )
    )
    if mailing_list is None:
        mailing_list = MailingList(directory_id=directory.id, name=name)
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
    # As bytes: compare_digest refuses str with non-ASCII characters (a forged token may hold
    # any), and an exception here would turn a bad link into a server error.
    expected = _signature(secret_key, contact_id).encode()
    if not hmac.compare_digest(signature.encode("utf-8", "surrogatepass"), expected):
        return None
    return contact_id


def opt_out_url(base_url: str, secret_key: str, contact_id: str) -> str:
    """The opt-out link put in invitations: opens without login."""
    return f"{base_url.rstrip('/')}/optout/{opt_out_token(secret_key, contact_id)}"


def _signature(secret_key: str, contact_id: str) -> str:
    message = f"opt-out:{contact_id}".encode("utf-8", "surrogatepass")
    digest = hmac.new(secret_key.encode(), message, hashlib.sha256)
    return digest.hexdigest()[:32]


def set_opted_out(session: Session, contact: Contact, opted_out: bool = True) -> bool:
    """Mark the contact opted out (or back in); returns whether anything changed."""
    if contact.opted_out == opted_out:
        return False
    contact.opted_out = opted_out
    contact.opted_out_at = utcnow() if opted_out else None
    session.flush()
    return True


# === use cases: each owns its transaction. The owner of a directory, or an admin, may use it;
# to anyone else it does not exist (NotFound), so that ids cannot be probed.

MAX_NAME_LENGTH = 100
MAX_FREQUENCY_LIMIT = 1_000
MAX_FREQUENCY_DAYS = 3_650
HISTORY_LIMIT = 100
IMPORT_CHUNK_SIZE = 500
MAX_REPORTED_PROBLEMS = 1_000
MAX_MEMBERS_PER_REQUEST = 1_000
MATCH_ON = ("email", "external_ref")
IMPORT_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
EDITABLE_CONTACT_FIELDS = (*CONTACT_TEXT_LIMITS, "email", "external_ref", "embedded_data")


# --- directories


def list_directories(db: Database, actor: Actor) -> list[Directory]:
    """The actor's directories (an admin sees everyone's), oldest first."""
    query = select(Directory).order_by(Directory.created_at, Directory.id)
    if not actor.is_admin:
        query = query.where(Directory.owner_id == actor.id)
    with db.reader() as uow:
        return list(uow.session.scalars(query))


def create_directory(
    db: Database,
    actor: Actor,
    name: str,
    *,
    frequency_limit: int | None = None,
    frequency_days: int | None = None,
) -> Directory:
    """A new directory owned by the actor; names are unique per owner (Conflict)."""
    name = _check_name(name, "directory")
    _check_frequency(frequency_limit, frequency_days)
    try:
        with db.uow() as uow:
            _check_directory_name_free(uow.session, actor.id, name)
            directory = Directory(
                owner_id=actor.id,
                name=name,
                frequency_limit=frequency_limit,
                frequency_days=frequency_days,
            )
            uow.session.add(directory)
            uow.session.flush()
            audit.record(
                uow.session, actor.id, "directory.create", "directory", directory.id, name=name
            )
            uow.commit()
    except IntegrityError as exc:
        raise _directory_name_taken(name) from exc
    return directory


def get_directory(db: Database, actor: Actor, directory_id: str) -> Directory:
    with db.reader() as uow:
        return _directory_for(uow.session, actor, directory_id)


def find_directory(
    db: Database, actor: Actor, name_or_id: str, *, create_missing: bool = False
) -> Directory:
    """One of the actor's directories by name or id (for the CLI); an admin may also name any
    directory by id. With `create_missing`, a missing one is made (by name)."""
    if name_or_id.startswith("DR_"):
        return get_directory(db, actor, name_or_id)
    if not create_missing:
        with db.reader() as uow:
            return directory_of_owner(uow.session, actor.id, name_or_id, create_missing=False)
    name = _check_name(name_or_id, "directory")
    try:
        with db.uow() as uow:
            directory = directory_of_owner(uow.session, actor.id, name)
            uow.commit()
    except IntegrityError:  # made by someone else meanwhile
        with db.reader() as uow:
            directory = directory_of_owner(uow.session, actor.id, name, create_missing=False)
    return directory


def update_directory(
    db: Database, actor: Actor, directory_id: str, changes: dict[str, Any]
) -> Directory:
    """Rename a directory or change its frequency rule (`frequency_limit` invitations per
    contact per `frequency_days`; both set, or both null for no rule)."""
    unknown = set(changes) - {"name", "frequency_limit", "frequency_days"}
    if unknown:
        raise InvalidInput(f"These fields cannot be changed: {', '.join(sorted(unknown))}.")
    try:
        with db.uow() as uow:
            directory = _directory_for(uow.session, actor, directory_id)
            before = {
                "name": directory.name,
                "frequency_limit": directory.frequency_limit,
                "frequency_days": directory.frequency_days,
            }
            after = before | changes
            after["name"] = _check_name(after["name"], "directory")
            _check_frequency(after["frequency_limit"], after["frequency_days"])
            if after["name"] != directory.name:
                _check_directory_name_free(uow.session, directory.owner_id, after["name"])
            for name, value in after.items():
                setattr(directory, name, value)
            audit.record(
                uow.session, actor.id, "directory.update", "directory", directory.id,
                before=before, after=after,
            )  # fmt: skip
            uow.commit()
    except IntegrityError as exc:
        raise _directory_name_taken(changes.get("name", "")) from exc
    return directory


def delete_directory(db: Database, actor: Actor, directory_id: str) -> None:
    """Delete a directory with its contacts, mailing lists and distributions."""
    with db.uow() as uow:
        directory = _directory_for(uow.session, actor, directory_id)
        audit.record(
            uow.session, actor.id, "directory.delete", "directory", directory.id,
            name=directory.name,
        )  # fmt: skip
        uow.session.delete(directory)
        uow.commit()


def _directory_for(session: Session, actor: Actor, directory_id: str) -> Directory:
    directory = session.get(Directory, directory_id)
    if directory is None or not (actor.is_admin or directory.owner_id == actor.id):
        raise NotFound(f"No directory {directory_id!r}.")
    return directory


def _check_directory_name_free(session: Session, owner_id: str, name: str) -> None:
    taken = session.scalar(
        select(Directory.id).where(Directory.owner_id == owner_id, Directory.name == name)
    )
    if taken:
        raise _directory_name_taken(name)


def _directory_name_taken(name: str) -> Conflict:
    return Conflict(
        f"There is a directory named {name!r} already: pick another name.", code="name_taken"
    )


def _check_name(name: Any, what: str) -> str:
    text = name.strip() if isinstance(name, str) else ""
    if not text:
        raise InvalidInput(f"The {what} needs a name.", code="bad_name")
    if len(text) > MAX_NAME_LENGTH or any(char in text for char in "\r\n\t\x00"):
        raise InvalidInput(
            f"A {what} name is one line of at most {MAX_NAME_LENGTH} characters.",
            code="bad_name",
        )
    return text


def _check_frequency(limit: Any, days: Any) -> None:
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


# --- mailing lists


@dataclass(frozen=True)
class MailingListInfo:
    id: str
    directory_id: str
    name: str
    member_count: int
    created_at: datetime


def create_mailing_list(db: Database, actor: Actor, directory_id: str, name: str) -> MailingList:
    """A new mailing list; names are unique per directory (Conflict)."""
    name = _check_name(name, "mailing list")
    try:
        with db.uow() as uow:
            directory = _directory_for(uow.session, actor, directory_id)
            if _mailing_list_named(uow.session, directory.id, name) is not None:
                raise _list_name_taken(name)
            mailing_list = MailingList(directory_id=directory.id, name=name)
            uow.session.add(mailing_list)
            uow.session.flush()
            uow.commit()
    except IntegrityError as exc:
        raise _list_name_taken(name) from exc
    return mailing_list


def list_mailing_lists(db: Database, actor: Actor, directory_id: str) -> list[MailingListInfo]:
    members = (
        select(MailingListMember.mailing_list_id, func.count().label("n"))
        .group_by(MailingListMember.mailing_list_id)
        .subquery()
    )
    query = (
        select(MailingList, func.coalesce(members.c.n, 0))
        .outerjoin(members, members.c.mailing_list_id == MailingList.id)
        .where(MailingList.directory_id == directory_id)
        .order_by(MailingList.created_at, MailingList.id)
    )
    with db.reader() as uow:
        _directory_for(uow.session, actor, directory_id)
        return [
            MailingListInfo(m.id, m.directory_id, m.name, int(count), m.created_at)
            for m, count in uow.session.execute(query)
        ]


def delete_mailing_list(db: Database, actor: Actor, mailing_list_id: str) -> None:
    """Delete a mailing list (its contacts stay in the directory)."""
    with db.uow() as uow:
        mailing_list = _mailing_list_for(uow.session, actor, mailing_list_id)
        uow.session.delete(mailing_list)
        uow.commit()


def add_list_members(
    db: Database, actor: Actor, mailing_list_id: str, contact_ids: list[str]
) -> int:
    """Put contacts of the list's directory on it; returns how many were not on it yet.
    An id that is not a contact of that directory refuses the whole request (NotFound)."""
    ids = _check_contact_ids(contact_ids)
    with db.uow() as uow:
        mailing_list = _mailing_list_for(uow.session, actor, mailing_list_id)
        _check_contacts_in(uow.session, mailing_list.directory_id, ids)
        present = set(
            uow.session.scalars(
                select(MailingListMember.contact_id).where(
                    MailingListMember.mailing_list_id == mailing_list.id,
                    MailingListMember.contact_id.in_(ids),
                )
            )
        )
        new = [cid for cid in ids if cid not in present]
        uow.session.add_all(
            MailingListMember(mailing_list_id=mailing_list.id, contact_id=cid) for cid in new
        )
        uow.commit()
    return len(new)


def remove_list_members(
    db: Database, actor: Actor, mailing_list_id: str, contact_ids: list[str]
) -> int:
    """Take contacts off a list; returns how many were on it."""
    ids = _check_contact_ids(contact_ids)
    with db.uow() as uow:
        mailing_list = _mailing_list_for(uow.session, actor, mailing_list_id)
        removed = uow.session.execute(
            delete(MailingListMember).where(
                MailingListMember.mailing_list_id == mailing_list.id,
                MailingListMember.contact_id.in_(ids),
            )
        ).rowcount
        uow.commit()
    return int(removed or 0)


def _mailing_list_for(session: Session, actor: Actor, mailing_list_id: str) -> MailingList:
    mailing_list = session.get(MailingList, mailing_list_id)
    directory = session.get(Directory, mailing_list.directory_id) if mailing_list else None
    if directory is None or not (actor.is_admin or directory.owner_id == actor.id):
        raise NotFound(f"No mailing list {mailing_list_id!r}.")
    assert mailing_list is not None
    return mailing_list


def _mailing_list_named(session: Session, directory_id: str, name: str) -> MailingList | None:
    return session.scalar(
        select(MailingList).where(
            MailingList.directory_id == directory_id, MailingList.name == name
        )
    )


def _list_name_taken(name: str) -> Conflict:
    return Conflict(f"The directory has a mailing list named {name!r} already.", code="name_taken")


def _check_contact_ids(contact_ids: list[str]) -> list[str]:
    ids = list(dict.fromkeys(contact_ids))
    if not ids:
        raise InvalidInput("Name at least one contact in contact_ids.", code="no_contacts")
    if len(ids) > MAX_MEMBERS_PER_REQUEST:
        raise InvalidInput(
            f"At most {MAX_MEMBERS_PER_REQUEST:,} contacts per request.", code="too_many_items"
        )
    return ids


def _check_contacts_in(session: Session, directory_id: str, ids: list[str]) -> None:
    found = set(
        session.scalars(
            select(Contact.id).where(Contact.directory_id == directory_id, Contact.id.in_(ids))
        )
    )
    missing = [cid for cid in ids if cid not in found]
    if missing:
        shown = ", ".join(repr(cid[:40]) for cid in missing[:10])
        raise NotFound(
            f"Not contacts of this mailing list's directory: {shown}"
            f"{' and more' if len(missing) > 10 else ''}.",
            code="contact_not_found",
            details={"contact_ids": missing[:100]},
        )


# --- contacts


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
            directory = _directory_for(uow.session, actor, directory_id)
            if find_contact(uow.session, directory.id, email=values["email"]) is not None:
                raise _email_taken(values["email"])
            contact = Contact(directory_id=directory.id, **values)
            uow.session.add(contact)
            uow.session.flush()
            audit.record(
                uow.session, actor.id, "contact.create", "contact", contact.id,
                directory_id=directory.id,
            )  # fmt: skip
            uow.commit()
    except IntegrityError as exc:
        raise _email_taken(values["email"]) from exc
    return contact


def get_contact(db: Database, actor: Actor, contact_id: str) -> Contact:
    with db.reader() as uow:
        return _contact_for(uow.session, actor, contact_id)


def contact_details(
    db: Database, actor: Actor, contact_id: str, *, history_limit: int = HISTORY_LIMIT
) -> ContactDetails:
    """The contact with its mailing lists, invitations and responses (newest first)."""
    with db.reader() as uow:
        session = uow.session
        contact = _contact_for(session, actor, contact_id)
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


def find_contact_for(
    db: Database, actor: Actor, email_or_id: str, directory_name_or_id: str = DEFAULT_DIRECTORY
) -> Contact:
    """A contact by id, or by email in the actor's directory (for the CLI)."""
    if email_or_id.startswith("CT_"):
        return get_contact(db, actor, email_or_id)
    email = normalize_email(email_or_id)
    directory = find_directory(db, actor, directory_name_or_id)
    with db.reader() as uow:
        contact = find_contact(uow.session, directory.id, email=email)
    if contact is None:
        raise NotFound(f"Directory {directory.name!r} has no contact {email}.")
    return contact


def update_contact(db: Database, actor: Actor, contact_id: str, changes: dict[str, Any]) -> Contact:
    """Change some of a contact's fields. Text fields are replaced (null or "" clears them);
    embedded data is merged (a null value removes the field)."""
    unknown = set(changes) - set(EDITABLE_CONTACT_FIELDS)
    if unknown:
        raise InvalidInput(f"These fields cannot be changed: {', '.join(sorted(unknown))}.")
    embedded_changes = changes.get("embedded_data") or {}
    if not isinstance(embedded_changes, dict):
        raise InvalidInput("embedded_data must be an object.", code="invalid_contact")
    try:
        with db.uow() as uow:
            contact = _contact_for(uow.session, actor, contact_id)
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
        contact = _contact_for(uow.session, actor, contact_id)
        audit.record(
            uow.session, actor.id, "contact.delete", "contact", contact.id,
            directory_id=contact.directory_id,
        )  # fmt: skip
        uow.session.delete(contact)
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
    query = (
        select(Contact)
        .where(Contact.directory_id == directory_id)
        .order_by(Contact.created_at, Contact.id)
        .limit(limit + 1)
    )
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
    if cursor:
        created_at, last_id = decode_cursor(cursor)
        query = query.where(
            or_(
                Contact.created_at > created_at,
                and_(Contact.created_at == created_at, Contact.id > str(last_id)),
            )
        )
    with db.reader() as uow:
        _directory_for(uow.session, actor, directory_id)
        if mailing_list_id:
            mailing_list = uow.session.get(MailingList, mailing_list_id)
            if mailing_list is None or mailing_list.directory_id != directory_id:
                raise NotFound(f"The directory has no mailing list {mailing_list_id!r}.")
        rows = list(uow.session.scalars(query))
    has_more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id) if has_more else None
    return Page(items=rows, next_cursor=next_cursor)


def set_contact_opt_out(
    db: Database, actor: Actor, contact_id: str, opted_out: bool = True
) -> Contact:
    """Opt a contact out of invitations (or back in); doing it twice changes nothing."""
    with db.uow() as uow:
        contact = _contact_for(uow.session, actor, contact_id)
        if set_opted_out(uow.session, contact, opted_out):
            audit.record(
                uow.session, actor.id, "contact.opt_out" if opted_out else "contact.opt_in",
                "contact", contact.id,
            )  # fmt: skip
        uow.commit()
    return contact


def _contact_for(session: Session, actor: Actor, contact_id: str) -> Contact:
    contact = session.get(Contact, contact_id)
    directory = session.get(Directory, contact.directory_id) if contact else None
    if directory is None or not (actor.is_admin or directory.owner_id == actor.id):
        raise NotFound(f"No contact {contact_id!r}.")
    assert contact is not None
    return contact


def _email_taken(email: str) -> Conflict:
    return Conflict(
        f"The directory has a contact with the email {email} already.", code="email_taken"
    )


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# --- the opt-out page (no login: the signed token is the permission)


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
    contact_id = contact_id_of_opt_out_token(secret_key, token)
    contact = session.get(Contact, contact_id) if contact_id else None
    if contact is None:
        raise NotFound("This opt-out link is not valid.", code="link_invalid")
    return contact


def _opt_out_view(contact: Contact) -> OptOutView:
    return OptOutView(contact.id, mask_email(contact.email), contact.opted_out)


# --- import


@dataclass(frozen=True)
class RowProblem:
    """A row that was not imported: its (first) line and why."""

    line: int
    code: str
    message: str


@dataclass
class ContactImportResult:
    """What an import did: rows read, contacts created and updated, rows refused."""

    total: int = 0
    created: int = 0
    updated: int = 0
    failed: int = 0
    problems: list[RowProblem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    mailing_list_id: str | None = None

    def refuse(self, line: int, code: str, message: str) -> None:
        self.failed += 1
        if len(self.problems) < MAX_REPORTED_PROBLEMS:
            self.problems.append(RowProblem(line, code, message))


def import_contacts(
    db: Database,
    actor: Actor,
    directory_id: str,
    lines: Iterable[str],
    fmt: str,
    *,
    match_on: str = "email",
    mailing_list: str | None = None,
    chunk_size: int = IMPORT_CHUNK_SIZE,
    on_progress: Callable[[ContactImportResult], None] | None = None,
) -> ContactImportResult:
    """Import contacts from CSV or JSON-lines text, read line by line (never all at once).

    Each row is checked on its own; a bad row is reported with its line and reason and the
    others go on. Good rows are upserted (matched by email, or by external reference with
    `match_on="external_ref"`) `chunk_size` to a transaction, and put on `mailing_list` (an id,
    or a name, made when missing). A file whose header cannot be used is refused as a whole
    (InvalidInput) before anything is stored. `on_progress` hears after every chunk.
    """
    if fmt not in ("csv", "jsonl"):
        raise InvalidInput(f"Cannot import {fmt!r}: use CSV or JSON lines.", code="bad_format")
    if match_on not in MATCH_ON:
        raise InvalidInput(
            f"match_on must be one of {', '.join(MATCH_ON)}, not {match_on!r}.",
            code="bad_match_on",
        )
    with db.reader() as uow:
        _directory_for(uow.session, actor, directory_id)
    result = ContactImportResult()
    rows = (
        contacts_import.read_csv(lines, result.warnings)
        if fmt == "csv"
        else contacts_import.read_jsonl(lines)
    )
    pending: list[tuple[int, ContactFields]] = []
    try:
        for row in rows:
            if result.total == 0 and mailing_list:  # the header was fine: now make the list
                result.mailing_list_id = _ensure_mailing_list(db, actor, directory_id, mailing_list)
            result.total += 1
            fields = _checked_fields(row, result)
            if fields is None:
                continue
            pending.append((row.line, fields))
            if len(pending) >= chunk_size:
                _store_chunk(db, directory_id, pending, match_on, result)
                pending = []
                if on_progress:
                    on_progress(result)
    except contacts_import.HeaderProblem as exc:
        raise InvalidInput(exc.message, code=exc.code) from None
    if pending:
        _store_chunk(db, directory_id, pending, match_on, result)
    result.problems.sort(key=lambda problem: problem.line)
    if on_progress:
        on_progress(result)
    with db.uow() as uow:
        audit.record(
            uow.session, actor.id, "contacts.import", "directory", directory_id,
            total=result.total, created=result.created, updated=result.updated,
            failed=result.failed,
        )  # fmt: skip
        uow.commit()
    return result


def _checked_fields(
    row: contacts_import.ImportRow, result: ContactImportResult
) -> ContactFields | None:
    if row.fields is None:
        problem = row.problems[0] if row.problems else {"code": "bad_row", "message": "?"}
        result.refuse(row.line, problem["code"], "; ".join(p["message"] for p in row.problems))
        return None
    fields = ContactFields(**row.fields)
    try:
        clean_contact_fields(fields)
    except InvalidInput as exc:
        result.refuse(row.line, exc.code, exc.message)
        return None
    return fields


def _ensure_mailing_list(db: Database, actor: Actor, directory_id: str, name_or_id: str) -> str:
    with db.uow() as uow:
        directory = _directory_for(uow.session, actor, directory_id)
        found = uow.session.get(MailingList, name_or_id)
        if found is not None and found.directory_id == directory.id:
            return found.id
        name = _check_name(name_or_id, "mailing list")
        found = _mailing_list_named(uow.session, directory.id, name)
        if found is None:
            found = MailingList(directory_id=directory.id, name=name)
            uow.session.add(found)
            uow.session.flush()
            uow.commit()
        return found.id


def _store_chunk(
    db: Database,
    directory_id: str,
    chunk: list[tuple[int, ContactFields]],
    match_on: str,
    result: ContactImportResult,
) -> None:
    """Upsert a chunk in one transaction; if it fails as a whole (a contact added by someone
    else meanwhile), its rows are retried one per transaction so only the culprit is refused."""
    outcomes: list[tuple[int, bool | InvalidInput]] = []
    try:
        with db.uow() as uow:
            session = uow.session
            directory = session.get(Directory, directory_id)
            if directory is None:
                raise NotFound(f"Directory {directory_id!r} was deleted during the import.")
            mailing_list = (
                session.get(MailingList, result.mailing_list_id) if result.mailing_list_id else None
            )
            for line, fields in chunk:
                try:
                    contact, created = upsert_contact(session, directory, fields, match_on=match_on)
                except InvalidInput as exc:
                    outcomes.append((line, exc))
                    continue
                if mailing_list is not None:
                    add_to_mailing_list(session, directory, mailing_list.id, contact)
                outcomes.append((line, created))
            uow.commit()
    except NotFound:
        raise
    except (CxloopError, IntegrityError) as exc:
        if len(chunk) == 1:
            message = (
                exc.message if isinstance(exc, CxloopError) else "it clashes with a stored contact"
            )
            result.refuse(chunk[0][0], "not_stored", f"The contact was not stored: {message}.")
            return
        for item in chunk:
            _store_chunk(db, directory_id, [item], match_on, result)
        return
    for line, outcome in outcomes:
        if isinstance(outcome, InvalidInput):
            result.refuse(line, outcome.code, outcome.message)
        elif outcome:
            result.created += 1
        else:
            result.updated += 1
