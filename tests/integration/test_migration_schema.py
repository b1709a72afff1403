"""Every migration still builds, and takes down, exactly the schema it did before the migrations
were rewritten to share `cxloop/db/migrations/_shapes.py`: tables, column order, types,
nullability, defaults, indexes, constraints and their names, on SQLite and on PostgreSQL.

The record (tests/fixtures/schema/migrations.json) was taken from the migrations as they stood
before; `python -m tests.integration.schema_snapshot` writes it (see that module)."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator
from contextlib import AbstractContextManager

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, text

from cxloop.db import migrate, models  # noqa: F401  (models registers every table)
from cxloop.db.base import Base
from cxloop.db.engine import create_database_engine
from tests.conftest import unavailable
from tests.integration.schema_snapshot import (
    SNAPSHOT_PATH,
    expected_schemas,
    fresh_postgres,
    fresh_sqlite,
    read_schema,
    revisions,
    walk_downgrades,
    walk_upgrades,
)

RECORD = json.loads(SNAPSHOT_PATH.read_text())


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """A database no migration has touched yet, on each engine."""
    fresh: AbstractContextManager[Engine]
    if request.param == "sqlite":
        fresh = fresh_sqlite()
    else:
        try:
            fresh = fresh_postgres()
            engine = fresh.__enter__()
        except Exception as exc:
            unavailable("PostgreSQL", f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}")
        try:
            yield engine
        finally:
            fresh.__exit__(None, None, None)
        return
    with fresh as engine:
        yield engine


def differences(expected: list[str], found: list[str]) -> str:
    return "\n".join(difflib.unified_diff(expected, found, "recorded", "now", lineterm="", n=0))


def test_the_record_covers_every_revision() -> None:
    for dialect in ("sqlite", "postgresql"):
        assert list(RECORD[dialect]["upgrade"]) == revisions()
        assert list(RECORD[dialect]["downgrade"]) == ["base", *revisions()[:-1]][::-1]


def test_each_revision_upgrades_and_downgrades_to_the_recorded_schema(
    empty_database: Engine,
) -> None:
    record = RECORD[empty_database.dialect.name]
    upgraded = expected_schemas(record["upgrade"])
    at_head: list[str] = []
    for revision, found in walk_upgrades(empty_database):
        assert found == upgraded[revision], (
            f"upgrade to {revision}:\n{differences(upgraded[revision], found)}"
        )
        at_head = found
    downgraded = expected_schemas(record["downgrade"], at_head)
    for revision, found in walk_downgrades(empty_database):
        assert found == downgraded[revision], (
            f"downgrade to {revision}:\n{differences(downgraded[revision], found)}"
        )
    # and up again from nothing, as a database that was taken down and rebuilt
    for revision, found in walk_upgrades(empty_database):
        assert found == upgraded[revision], f"re-upgrade to {revision}"


def test_a_changed_schema_is_seen(empty_database: Engine) -> None:
    """The comparison is not blind: an index added after head shows as a difference."""
    record = RECORD[empty_database.dialect.name]
    for _revision, _found in walk_upgrades(empty_database):
        pass
    with empty_database.begin() as connection:
        connection.execute(text("CREATE INDEX ix_extra ON users (name)"))
    head = expected_schemas(record["upgrade"])[revisions()[-1]]
    found = read_schema(empty_database)
    assert found != head
    assert any("ix_extra" in line for line in set(found) - set(head))


def test_the_models_declare_the_schema_the_migrations_build(database_url: str) -> None:
    """The ORM models and the migrations agree (Alembic's autogenerate finds nothing to do):
    an index dropped from a model but not by a migration, or the reverse, fails here."""
    engine = create_database_engine(database_url)
    try:
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    finally:
        engine.dispose()
    assert differences == []


def test_a_database_url_with_percent_signs_migrates(
    empty_database: Engine, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Alembic keeps the URL in a ConfigParser, where `%` means interpolation: a SQLite file in
    a folder named with `%`, and a PostgreSQL URL with `?options=-c%20...`, still migrate."""
    if empty_database.dialect.name == "sqlite":
        folder = tmp_path_factory.mktemp("100% data")
        url = f"sqlite:///{folder}/cxloop.db"
    else:
        url = empty_database.url.render_as_string(hide_password=False)
        url += "?options=-c%20work_mem%3D8MB"
    engine = create_database_engine(url)
    try:
        migrate.upgrade(engine)
        assert migrate.current_revision(engine) == revisions()[-1]
    finally:
        engine.dispose()
