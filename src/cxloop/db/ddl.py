"""The column, constraint and index shapes the migrations repeat, written once.

Each helper builds exactly the Alembic operation or SQLAlchemy object that the generated
migrations spelled out in full, with the names the naming convention (`db/base.py`) gives.
Applied migrations use them, so a helper must never change what it builds: a change here would
rewrite the history of every database. `tests/integration/test_migration_schema.py` holds every
revision's schema, up and down, on SQLite and PostgreSQL, to a record taken before the
migrations used these helpers. A new shape gets a new helper.
"""

from __future__ import annotations

from collections.abc import Sequence

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


def primary_key(table: str, *columns: str) -> sa.PrimaryKeyConstraint:
    """`table`'s primary key over `columns`, named pk_<table>."""
    return sa.PrimaryKeyConstraint(*columns, name=op.f(f"pk_{table}"))


def foreign_key(
    table: str, column: str, referred_table: str, *, ondelete: str | None = None
) -> sa.ForeignKeyConstraint:
    """`table.column` referring to `referred_table.id`, named fk_<table>_<column>_<referred>."""
    return sa.ForeignKeyConstraint(
        [column],
        [f"{referred_table}.id"],
        name=op.f(f"fk_{table}_{column}_{referred_table}"),
        ondelete=ondelete,
    )


def unique(table: str, *columns: str) -> sa.UniqueConstraint:
    """A unique constraint over `columns`, named uq_<table>_<first column>."""
    return sa.UniqueConstraint(*columns, name=op.f(f"uq_{table}_{columns[0]}"))


def create_indexes(table: str, *columns: str, **named: Sequence[str]) -> None:
    """Plain (not unique) indexes on `table`: one on each of `columns`, named
    ix_<table>_<column>, and one called `name` over the columns of each `name=[...]`."""
    with op.batch_alter_table(table, schema=None) as batch_op:
        for column in columns:
            batch_op.create_index(batch_op.f(f"ix_{table}_{column}"), [column], unique=False)
        for name, indexed in named.items():
            batch_op.create_index(name, list(indexed), unique=False)
