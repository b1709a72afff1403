"""The column, constraint and index shapes the migrations repeat, written once.

Each helper builds exactly the Alembic operation or SQLAlchemy object that the generated
migrations spelled out in full, with the names the naming convention (`db/base.py`) gives.
Applied migrations use them, so a helper must never change what it builds: a change here would
rewrite the history of every database. `tests/integration/test_migration_schema.py` holds every
revision's schema, up and down, on SQLite and PostgreSQL, to a record taken before the
migrations used these helpers. A new shape gets a new helper.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from alembic import op

# The length of our ids when the migrations were written; a literal, not `domain.ids`, so that
# the history stays what it was if ids ever grow.
_ID_LENGTH = 20


def id_column(name: str, *, nullable: bool = False) -> sa.Column[str]:
    """A column holding one of our ids: the table's own or a reference to another's."""
    return sa.Column(name, sa.String(length=_ID_LENGTH), nullable=nullable)


def timestamp(name: str, *, nullable: bool = False) -> sa.Column[object]:
    """A timezone-aware timestamp column."""
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def string(name: str, length: int, *, nullable: bool = False) -> sa.Column[str]:
    """A VARCHAR(`length`) column."""
    return sa.Column(name, sa.String(length=length), nullable=nullable)


def text(name: str, *, nullable: bool = False) -> sa.Column[str]:
    """A TEXT column, for values of no fixed bound (messages, sealed secrets)."""
    return sa.Column(name, sa.Text(), nullable=nullable)


def integer(name: str, *, nullable: bool = False) -> sa.Column[int]:
    """An INTEGER column."""
    return sa.Column(name, sa.Integer(), nullable=nullable)


def boolean(name: str, *, nullable: bool = False) -> sa.Column[bool]:
    """A BOOLEAN column."""
    return sa.Column(name, sa.Boolean(), nullable=nullable)


def json(name: str, *, nullable: bool = False) -> sa.Column[object]:
    """A JSON column."""
    return sa.Column(name, sa.JSON(), nullable=nullable)


def serial_id() -> sa.Column[int]:
    """An `id` column numbered by the database: BIGINT on PostgreSQL, INTEGER on SQLite (where
    only an INTEGER primary key is the rowid that numbers itself)."""
    return sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False)


@dataclass(frozen=True)
class Reference:
    """The row a foreign key points at, and what deleting that row does to the referring one."""

    table: str
    column: str = "id"
    ondelete: str | None = None


def cascade(table: str, column: str = "id") -> Reference:
    """A reference whose rows go when the row they refer to goes."""
    return Reference(table, column, ondelete="CASCADE")


def set_null(table: str) -> Reference:
    """A reference that is emptied when the row it refers to goes."""
    return Reference(table, ondelete="SET NULL")


def primary_key(table: str, *columns: str) -> sa.PrimaryKeyConstraint:
    """`table`'s primary key over `columns`, named pk_<table>."""
    return sa.PrimaryKeyConstraint(*columns, name=op.f(f"pk_{table}"))


def foreign_key(table: str, column: str, referred: Reference) -> sa.ForeignKeyConstraint:
    """`table.column` referring to `referred`, named fk_<table>_<column>_<referred table>."""
    return sa.ForeignKeyConstraint(
        [column],
        [f"{referred.table}.{referred.column}"],
        name=op.f(f"fk_{table}_{column}_{referred.table}"),
        ondelete=referred.ondelete,
    )


def unique(table: str, *columns: str) -> sa.UniqueConstraint:
    """A unique constraint over `columns`, named uq_<table>_<first column>."""
    return sa.UniqueConstraint(*columns, name=op.f(f"uq_{table}_{columns[0]}"))


def create_table(
    table: str,
    *columns: sa.Column[Any],
    key: Sequence[str] = ("id",),
    references: Mapping[str, Reference] | None = None,
    unique_on: Sequence[Sequence[str]] = (),
) -> sa.Table:
    """Create `table` with `columns`, then its constraints in the order the generated migrations
    wrote them (SQLite keeps that order in the table's SQL): a foreign key for each column in
    `references`, the primary key over `key`, a unique constraint for each of `unique_on`."""
    return op.create_table(
        table,
        *columns,
        *(foreign_key(table, column, referred) for column, referred in (references or {}).items()),
        primary_key(table, *key),
        *(unique(table, *unique_columns) for unique_columns in unique_on),
    )


def create_indexes(table: str, *columns: str, **named: Sequence[str]) -> None:
    """Plain (not unique) indexes on `table`: one on each of `columns`, named
    ix_<table>_<column>, and one called `name` over the columns of each `name=[...]`."""
    with op.batch_alter_table(table, schema=None) as batch_op:
        for column in columns:
            batch_op.create_index(batch_op.f(f"ix_{table}_{column}"), [column], unique=False)
        for name, indexed in named.items():
            batch_op.create_index(name, list(indexed), unique=False)
