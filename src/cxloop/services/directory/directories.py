"""Directories: an owner's address books, each with an optional frequency rule.

Look-ups: `get_directory` by id, `find_directory_by_name` by name; `directory_of_owner` takes
the `directory` of a workflow's directory task, which may be either (an id wins; a name never
has the shape of an id)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cxloop.db.directory_models import (
    Directory,
)
from cxloop.db.uow import Database
from cxloop.errors import Conflict, NotFound
from cxloop.services import audit
from cxloop.services.access import Actor
from cxloop.services.changes import check_changeable, check_name_free
from cxloop.services.directory.shared import (
    DIRECTORY_ID_SHAPE,
    add_recorded,
    check_frequency,
    check_name,
    delete_recorded,
    directory_for,
)


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
    if not create_missing or DIRECTORY_ID_SHAPE.fullmatch(name_or_id):
        raise NotFound(f"No directory {name_or_id!r}.", subject="directory")
    directory = Directory(owner_id=owner_id, name=name_or_id)
    session.add(directory)
    session.flush()
    return directory


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
    name = check_name(name, "directory")
    check_frequency(frequency_limit, frequency_days)
    try:
        with db.uow() as uow:
            check_name_free(uow.session, Directory, actor.id, name, _directory_name_taken)
            directory = Directory(
                owner_id=actor.id,
                name=name,
                frequency_limit=frequency_limit,
                frequency_days=frequency_days,
            )
            add_recorded(uow.session, actor, directory, name=name)
            uow.commit()
    except IntegrityError as exc:
        raise _directory_name_taken(name) from exc
    return directory


def get_directory(db: Database, actor: Actor, directory_id: str) -> Directory:
    with db.reader() as uow:
        return directory_for(uow.session, actor, directory_id)


def find_directory_by_name(
    db: Database, actor: Actor, name: str, *, create_missing: bool = False
) -> Directory:
    """The actor's directory with this name; NotFound, or with `create_missing` a new one."""
    if not create_missing:
        with db.reader() as uow:
            return _directory_named(uow.session, actor.id, name)
    name = check_name(name, "directory")
    try:
        with db.uow() as uow:
            directory = directory_of_owner(uow.session, actor.id, name)
            uow.commit()
    except IntegrityError:  # made by someone else meanwhile
        with db.reader() as uow:
            directory = _directory_named(uow.session, actor.id, name)
    return directory


def _directory_named(session: Session, owner_id: str, name: str) -> Directory:
    directory = session.scalar(
        select(Directory).where(Directory.owner_id == owner_id, Directory.name == name)
    )
    if directory is None:
        raise NotFound(f"No directory {name!r}.", subject="directory")
    return directory


def update_directory(
    db: Database, actor: Actor, directory_id: str, changes: dict[str, Any]
) -> Directory:
    """Rename a directory or change its frequency rule (`frequency_limit` invitations per
    contact per `frequency_days`; both set, or both null for no rule)."""
    check_changeable(changes, ("name", "frequency_limit", "frequency_days"))
    try:
        with db.uow() as uow:
            directory = directory_for(uow.session, actor, directory_id)
            after = {
                "name": directory.name,
                "frequency_limit": directory.frequency_limit,
                "frequency_days": directory.frequency_days,
            } | changes
            after["name"] = check_name(after["name"], "directory")
            check_frequency(after["frequency_limit"], after["frequency_days"])
            if after["name"] != directory.name:
                check_name_free(
                    uow.session, Directory, directory.owner_id, after["name"], _directory_name_taken
                )
            audit.record_update(uow.session, actor.id, "directory", directory, after)
            uow.commit()
    except IntegrityError as exc:
        raise _directory_name_taken(changes.get("name", "")) from exc
    return directory


def delete_directory(db: Database, actor: Actor, directory_id: str) -> None:
    """Delete a directory with its contacts, mailing lists and distributions."""
    with db.uow() as uow:
        directory = directory_for(uow.session, actor, directory_id)
        delete_recorded(uow.session, actor, directory, name=directory.name)
        uow.commit()


def _directory_name_taken(name: str) -> Conflict:
    return Conflict(
        f"There is a directory named {name!r} already: pick another name.", code="name_taken"
    )
