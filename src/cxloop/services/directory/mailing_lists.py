"""Mailing lists: named sets of a directory's contacts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cxloop.db.directory_models import (
    Contact,
    Directory,
    MailingList,
    MailingListMember,
)
from cxloop.db.uow import Database
from cxloop.errors import Conflict, InvalidInput, NotFound
from cxloop.services.access import Actor
from cxloop.services.directory.shared import (
    check_name,
    directory_for,
    mailing_list_for,
    mailing_list_named,
    one_line,
)

MAX_MEMBERS_PER_REQUEST = 1_000


def add_to_mailing_list(
    session: Session, directory: Directory, list_name_or_id: str, contact: Contact
) -> MailingList:
    """Put the contact on the directory's mailing list (made when missing); idempotent."""
    # Looked up by the name it is stored under, so " VIP" finds the "VIP" it made before.
    name = one_line(list_name_or_id)
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


@dataclass(frozen=True)
class MailingListInfo:
    id: str
    directory_id: str
    name: str
    member_count: int
    created_at: datetime


def create_mailing_list(db: Database, actor: Actor, directory_id: str, name: str) -> MailingList:
    """A new mailing list; names are unique per directory (Conflict)."""
    name = check_name(name, "mailing list")
    try:
        with db.uow() as uow:
            directory = directory_for(uow.session, actor, directory_id)
            if mailing_list_named(uow.session, directory.id, name) is not None:
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
        directory_for(uow.session, actor, directory_id)
        return [
            MailingListInfo(m.id, m.directory_id, m.name, int(count), m.created_at)
            for m, count in uow.session.execute(query)
        ]


def delete_mailing_list(db: Database, actor: Actor, mailing_list_id: str) -> None:
    """Delete a mailing list (its contacts stay in the directory)."""
    with db.uow() as uow:
        mailing_list = mailing_list_for(uow.session, actor, mailing_list_id)
        uow.session.delete(mailing_list)
        uow.commit()


def add_list_members(
    db: Database, actor: Actor, mailing_list_id: str, contact_ids: list[str]
) -> int:
    """Put contacts of the list's directory on it; returns how many were not on it yet.
    An id that is not a contact of that directory refuses the whole request (NotFound)."""
    ids = _check_contact_ids(contact_ids)
    with db.uow() as uow:
        mailing_list = mailing_list_for(uow.session, actor, mailing_list_id)
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
        mailing_list = mailing_list_for(uow.session, actor, mailing_list_id)
        removed = uow.session.execute(
            delete(MailingListMember).where(
                MailingListMember.mailing_list_id == mailing_list.id,
                MailingListMember.contact_id.in_(ids),
            )
        ).rowcount
        uow.commit()
    return int(removed or 0)


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
