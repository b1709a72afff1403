"""The database schema as plain lines, after every migration, for SQLite and PostgreSQL.

`tests/fixtures/schema/migrations.json` holds what each revision of `cxloop/db/migrations` adds
to and removes from the schema, as these functions read it (taken from the migrations as they
were before they were rewritten to share `migrations/_shapes.py`). The test
`test_migration_schema.py` upgrades fresh databases one revision at a time, then downgrades
them one revision at a time, and compares each step with that record.

Regenerate (only when a new migration is added; a rewritten one must match the record):

    .venv/bin/python -m tests.integration.schema_snapshot

with PostgreSQL reachable at CXLOOP_TEST_POSTGRES_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/test).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, text

from cxloop.db import migrate
from cxloop.db.engine import create_database_engine

SNAPSHOT_PATH = Path(__file__).resolve().parents[1] / "fixtures" / "schema" / "migrations.json"
POSTGRES_ADMIN_URL = os.environ.get(
    "CXLOOP_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)

# What SQLite keeps of a schema is the DDL text of every table, index and trigger: all of it.
_SQLITE = "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"

# PostgreSQL's catalogue, read so that every property a migration can set shows: column order,
# types with their modifiers, nullability, defaults, identity; every constraint and index with its
# full definition (names, columns, ON DELETE, partial-index predicates); sequences; enum types.
_POSTGRES = {
    "column": """
        SELECT c.relname, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod),
               a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v')
          AND a.attnum > 0 AND NOT a.attisdropped""",
    "constraint": """
        SELECT conrelid::regclass::text, conname, contype, pg_get_constraintdef(oid)
        FROM pg_constraint WHERE connamespace = 'public'::regnamespace""",
    "index": "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'",
    "sequence": """
        SELECT sequencename, data_type::text, start_value, increment_by, cycle
        FROM pg_sequences WHERE schemaname = 'public'""",
    "enum": """
        SELECT t.typname, e.enumsortorder, e.enumlabel
        FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid
        JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = 'public'""",
    "trigger": """
        SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid)
        FROM pg_trigger WHERE NOT tgisinternal""",
}


def _table_constraints_sorted(sql: str | None) -> str | None:
    """SQLite DDL with its table constraints in name order. SQLite batch mode rebuilds a table
    from what it reflects, and lists the foreign keys in an order that varies from run to run;
    the order of constraints means nothing, the order of columns does and is kept."""
    if not sql or not sql.startswith("CREATE TABLE") or "\n" not in sql:
        return sql
    head, _, body = sql.partition("(\n")
    items = [item.strip().rstrip(",").strip() for item in body.rstrip(")").split(", \n")]
    columns = [
        item
        for item in items
        if not item.startswith(("CONSTRAINT", "PRIMARY KEY", "FOREIGN KEY", "UNIQUE", "CHECK"))
    ]
    constraints = sorted(item for item in items if item not in columns)
    return head + "(\n\t" + ", \n\t".join(columns + constraints) + "\n)"


def schema_lines(connection: Connection) -> list[str]:
    """Every property of the schema `connection` sees, one sorted line each."""
    if connection.dialect.name == "sqlite":
        rows = [
            ("sqlite", kind, name, table, _table_constraints_sorted(sql))
            for kind, name, table, sql in connection.execute(text(_SQLITE))
        ]
    else:
        rows = [
            (kind, *row) for kind, sql in _POSTGRES.items() for row in connection.execute(text(sql))
        ]
    return sorted(json.dumps([str(value) for value in row]) for row in rows)


def revisions() -> list[str]:
    """The revision ids, oldest first."""
    config = migrate.alembic_config(create_engine("sqlite://"))
    script = ScriptDirectory.from_config(config)
    return [r.revision for r in reversed(list(script.walk_revisions("base", "heads")))]


def read_schema(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return schema_lines(connection)


def walk_upgrades(engine: Engine) -> Iterator[tuple[str, list[str]]]:
    """Upgrade `engine`'s empty database one revision at a time: each revision and the schema."""
    config = migrate.alembic_config(engine)
    for revision in revisions():
        command.upgrade(config, revision)
        yield revision, read_schema(engine)


def walk_downgrades(engine: Engine) -> Iterator[tuple[str, list[str]]]:
    """Downgrade `engine`'s database from head one revision at a time: the revision it is at
    after each step ("base" at the end) and the schema."""
    config = migrate.alembic_config(engine)
    ordered = revisions()
    for below in reversed(["base", *ordered[:-1]]):
        command.downgrade(config, below)
        yield below, read_schema(engine)


def changes(
    steps: list[tuple[str, list[str]]], start: list[str] | None = None
) -> dict[str, dict[str, list[str]]]:
    """What each step adds to and removes from the schema of the step before it (the first
    step: from `start`, by default the empty schema)."""
    record: dict[str, dict[str, list[str]]] = {}
    before = set(start or [])
    for revision, lines in steps:
        after = set(lines)
        record[revision] = {"added": sorted(after - before), "removed": sorted(before - after)}
        before = after
    return record


def expected_schemas(
    record: dict[str, dict[str, list[str]]], start: list[str] | None = None
) -> dict[str, list[str]]:
    """The full schema after each step, rebuilt from `changes` (and the same `start`)."""
    schemas: dict[str, list[str]] = {}
    current = set(start or [])
    for revision, change in record.items():
        current = (current - set(change["removed"])) | set(change["added"])
        schemas[revision] = sorted(current)
    return schemas


@contextmanager
def fresh_sqlite() -> Iterator[Engine]:
    with tempfile.TemporaryDirectory(prefix="cxloop-schema-") as folder:
        engine = create_database_engine(f"sqlite:///{folder}/schema.db")
        try:
            yield engine
        finally:
            engine.dispose()


@contextmanager
def fresh_postgres(admin_url: str = POSTGRES_ADMIN_URL) -> Iterator[Engine]:
    """A new, empty PostgreSQL database, dropped afterwards."""
    name = f"schema_{uuid.uuid4().hex[:12]}"
    admin = create_engine(
        admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3}
    )
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine = create_database_engine(admin_url.rsplit("/", 1)[0] + "/" + name)
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def record_walks(engine: Engine) -> dict[str, dict[str, dict[str, list[str]]]]:
    """Both walks on `engine`'s empty database: up to head, then down to base again, each step
    as what it changed (the downgrades' from the head schema)."""
    upgrades = list(walk_upgrades(engine))
    downgrades = list(walk_downgrades(engine))
    return {"upgrade": changes(upgrades), "downgrade": changes(downgrades, upgrades[-1][1])}


def main() -> int:
    record: dict[str, object] = {}
    with fresh_sqlite() as engine:
        record["sqlite"] = record_walks(engine)
    with fresh_postgres() as engine:
        record["postgresql"] = record_walks(engine)
    SNAPSHOT_PATH.parent.mkdir(parents=True, exist_ok=True)
    SNAPSHOT_PATH.write_text(json.dumps(record, indent=1, sort_keys=False) + "\n")
    print(f"wrote {SNAPSHOT_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
