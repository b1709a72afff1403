"""/api/v1/audit: the audit log (admins)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from cxloop.services import audit
from cxloop.web.api.schemas import MAX_ROW_ID, Reply
from cxloop.web.deps import AdminActor, Db

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


class AuditEntryOut(Reply):
    id: int
    at: datetime
    actor_id: str | None
    action: str
    object_type: str
    object_id: str
    details: dict[str, Any]


class AuditPage(Reply):
    items: list[AuditEntryOut]
    next_before_id: int | None


@router.get("", response_model=AuditPage)
def list_audit_entries(
    _admin: AdminActor,
    db: Db,
    object_type: Annotated[str | None, Query(max_length=32)] = None,
    object_id: Annotated[str | None, Query(max_length=64)] = None,
    before_id: Annotated[int | None, Query(ge=1, le=MAX_ROW_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AuditPage:
    """Newest first; pass `next_before_id` back as `before_id` for the next page."""
    rows, next_before_id = audit.list_entries(
        db, object_type=object_type, object_id=object_id, before_id=before_id, limit=limit
    )
    return AuditPage(
        items=[AuditEntryOut.model_validate(r) for r in rows], next_before_id=next_before_id
    )
