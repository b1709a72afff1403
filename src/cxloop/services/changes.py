"""What creates and partial updates (PATCH a survey, a directory, a contact) may give: which
fields a change may name, and the one rule for the names of connections, directories and
mailing lists."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cxloop.errors import Conflict, InvalidInput


def check_changeable(changes: Mapping[str, Any], changeable: Iterable[str]) -> None:
    """InvalidInput naming every field of `changes` that is not `changeable`, before anything
    is read or written."""
    unknown = set(changes) - set(changeable)
    if unknown:
        raise InvalidInput(f"These fields cannot be changed: {', '.join(sorted(unknown))}.")


MAX_NAME_LENGTH = 100


def check_line_name(name: Any, what: str) -> str:
    """`name` without surrounding blanks: required, one line (no tab, line break or NUL) of at
    most MAX_NAME_LENGTH characters; InvalidInput (bad_name) speaking of a `what` otherwise."""
    text = name.strip() if isinstance(name, str) else ""
    if not text:
        raise InvalidInput(f"The {what} needs a name.", code="bad_name")
    if len(text) > MAX_NAME_LENGTH or any(char in text for char in "\r\n\t\x00"):
        raise InvalidInput(
            f"A {what} name is one line of at most {MAX_NAME_LENGTH} characters.", code="bad_name"
        )
    return text


def check_name_free(
    session: Session, model: Any, owner_id: str, name: str, taken: Callable[[str], Conflict]
) -> None:
    """Raise `taken(name)` when the owner already has a `model` row (a connection, a directory)
    of this name: names are unique per owner."""
    if session.scalar(select(model.id).where(model.owner_id == owner_id, model.name == name)):
        raise taken(name)
