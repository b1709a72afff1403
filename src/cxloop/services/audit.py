"""The audit log: who did what to which object, written in the caller's transaction."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cxloop.db.models import AuditEntry
from cxloop.db.uow import Database
from cxloop.services.pagination import take_page


def record(
    session: Session,
    actor_id: str | None,
    action: str,
    object_type: str,
    object_id: str,
    **details: Any,
) -> None:
    """Add an audit entry to the session; it commits (or not) with the change it describes."""
    session.add(
        AuditEntry(
            actor_id=actor_id,
            action=action,
            object_type=object_type,
            object_id=object_id,
            details=details,
        )
    )


def record_alone(
    db: Database,
    actor_id: str | None,
    action: str,
    object_type: str,
    object_id: str,
    **details: Any,
) -> None:
    """Add an audit entry in a transaction of its own: for work that committed in parts (an
    import, chunk by chunk), audited once it is done."""
    with db.uow() as uow:
        record(uow.session, actor_id, action, object_type, object_id, **details)
        uow.commit()


def record_update(
    session: Session,
    actor_id: str | None,
    object_type: str,
    changed: Any,
    changes: Mapping[str, Any],
) -> None:
    """Set `changes` on `changed` (a row with an `id`) and add the "<object_type>.update" entry
    that holds each of those fields before and after."""
    before = {name: getattr(changed, name) for name in changes}
    for name, value in changes.items():
        setattr(changed, name, value)
    record(
        session, actor_id, f"{object_type}.update", object_type, changed.id,
        before=before, after=dict(changes),
    )  # fmt: skip


def list_entries(
    db: Database,
    *,
    object_type: str | None = None,
    object_id: str | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> tuple[list[AuditEntry], int | None]:
    """Audit entries, newest first, and the id to pass as `before_id` for the next page."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit + 1)
    if object_type:
        query = query.where(AuditEntry.object_type == object_type)
    if object_id:
        query = query.where(AuditEntry.object_id == object_id)
    if before_id:
        query = query.where(AuditEntry.id < before_id)
    with db.reader() as uow:
        rows, has_more = take_page(list(uow.session.scalars(query)), limit)
    return rows, rows[-1].id if has_more else None
