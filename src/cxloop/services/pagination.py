"""Keyset pagination: an opaque cursor naming the last row seen, stable under inserts.

Every list of the API pages this way, by (created_at, id): `paginate` for a plain query,
`keyset` + `page_from` where a service reads the rows itself, `after_cursor` / `after_key`
where the order is walked by other means (the run history's per-survey index walks, an export's
chunks), `take_page` for the audit log's id-only pages."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, and_, or_
from sqlalchemy.orm import InstrumentedAttribute, Session

from cxloop.errors import InvalidInput

T = TypeVar("T")
R = TypeVar("R")

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
        when = datetime.fromisoformat(created_at)
        if when.tzinfo is None:  # every cursor handed out names an aware UTC time
            raise ValueError
        return when, row_id
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


def newest_first(
    query: Select[Any],
    created_at: InstrumentedAttribute[datetime],
    row_id: InstrumentedAttribute[Any],
    *,
    limit: int,
    cursor: str | None,
) -> Select[Any]:
    """`query` newest first, after the row `cursor` names, one row more than `limit`.

    The extra row tells `page_from` whether there is a next page without a count.
    """
    return keyset(query, created_at, row_id, limit=limit, cursor=cursor, oldest_first=False)


def keyset(
    query: Select[Any],
    created_at: InstrumentedAttribute[datetime],
    row_id: InstrumentedAttribute[Any],
    *,
    limit: int,
    cursor: str | None,
    oldest_first: bool,
) -> Select[Any]:
    """`query` ordered by (created_at, id), newest or oldest first, after the row `cursor`
    names, one row more than `limit`."""
    check_limit(limit)
    if oldest_first:
        query = query.order_by(created_at, row_id)
    else:
        query = query.order_by(created_at.desc(), row_id.desc())
    query = query.limit(limit + 1)
    if cursor:
        query = query.where(after_cursor(created_at, row_id, cursor, oldest_first=oldest_first))
    return query


def after_cursor(
    created_at: Any, row_id: Any, cursor: str, *, oldest_first: bool
) -> ColumnElement[bool]:
    """The rows after the one `cursor` names, in (created_at, id) order; InvalidInput for a
    cursor that is not one this list hands out."""
    last_created_at, last_id = decode_cursor(cursor)
    if isinstance(last_id, int) != (row_id.type.python_type is int):
        raise InvalidInput(
            "The cursor belongs to another list: use the `next_cursor` this list handed out.",
            code="bad_cursor",
        )
    return after_key(created_at, row_id, (last_created_at, last_id), oldest_first=oldest_first)


def after_key(
    created_at: Any, row_id: Any, key: tuple[datetime, str | int], *, oldest_first: bool
) -> ColumnElement[bool]:
    """The rows after the row whose (created_at, id) is `key`, oldest or newest first."""
    last_created_at, last_id = key
    if oldest_first:
        return or_(
            created_at > last_created_at, and_(created_at == last_created_at, row_id > last_id)
        )
    return or_(created_at < last_created_at, and_(created_at == last_created_at, row_id < last_id))


def take_page(rows: Sequence[R], limit: int) -> tuple[list[R], bool]:
    """The first `limit` of `rows` (read with one row more than `limit`), and whether there
    was more: the extra row says so without a count."""
    return list(rows[:limit]), len(rows) > limit


def page_from(
    rows: Sequence[R], limit: int, key: Callable[[R], tuple[datetime, str | int]]
) -> Page[R]:
    """The first `limit` rows, with a cursor after the last of them if `rows` held one more."""
    items, has_more = take_page(rows, limit)
    return Page(items, encode_cursor(*key(items[-1])) if has_more else None)


def paginate(
    session: Session,
    query: Select[Any],
    created_at: InstrumentedAttribute[datetime],
    row_id: InstrumentedAttribute[Any],
    *,
    limit: int,
    cursor: str | None,
    oldest_first: bool = False,
) -> Page[Any]:
    """One page of the ORM objects `query` selects, newest first (or oldest first), keyset:
    stable under inserts."""
    ordered = keyset(
        query, created_at, row_id, limit=limit, cursor=cursor, oldest_first=oldest_first
    )
    rows = list(session.scalars(ordered))
    return page_from(rows, limit, lambda row: (row.created_at, getattr(row, row_id.key)))
