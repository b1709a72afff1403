"""The declarative base, the naming convention and the column types every model shares."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import DateTime, ForeignKey, MetaData
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, MappedColumn, mapped_column
from sqlalchemy.types import TypeDecorator

from cxloop.domain.ids import ID_LENGTH, new_ids

_Item = TypeVar("_Item")

# Constraint names that Alembic can find again on both engines (SQLite batch mode needs them).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always returned timezone-aware (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; cxloop stores aware UTC timestamps only")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def key_reference(target: str, *, index: bool | None = None) -> MappedColumn[str]:
    """A column of a composite primary key (a link between two rows) that refers to `target`
    (`"surveys.id"`); the link goes when the row it refers to goes."""
    return mapped_column(ForeignKey(target, ondelete="CASCADE"), primary_key=True, index=index)


def utcnow() -> datetime:
    """Now, timezone-aware, in UTC."""
    return datetime.now(UTC)


def new_id(prefix: str, length: int = ID_LENGTH) -> str:
    """A public id in the reference product's style: `SV_` + 15 random letters and digits."""
    return new_ids(prefix, 1, length)[0]


IDS_PER_QUERY = 5000  # values bound in one IN list


def in_chunks(values: Sequence[_Item], size: int = IDS_PER_QUERY) -> Iterator[Sequence[_Item]]:
    """`values` in slices of at most `size`, one IN list each: a Bulk job's batch holds up to
    100,000 runs, and PostgreSQL binds at most 65,535 parameters in one statement."""
    for start in range(0, len(values), size):
        yield values[start : start + size]
