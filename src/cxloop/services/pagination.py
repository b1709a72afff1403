"""Keyset pagination: an opaque cursor naming the last row seen, stable under inserts."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from cxloop.errors import InvalidInput

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(created_at: datetime, row_id: str | int) -> str:
    raw = json.dumps([created_at.isoformat(), row_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str | int]:
    """The (created_at, id) a cursor names; InvalidInput for anything that isn't one."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, row_id = json.loads(raw)
        if not isinstance(row_id, str | int) or isinstance(row_id, bool):
            raise ValueError
        return datetime.fromisoformat(created_at), row_id
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise InvalidInput(
            "The cursor is not one this server handed out: use the `next_cursor` of the "
            "previous page, or leave it out to start from the beginning.",
            code="bad_cursor",
        ) from exc


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}.", code="bad_limit")
    return limit
