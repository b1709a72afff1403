"""`cxloop db`: the schema."""

from __future__ import annotations

import typer

from cxloop.cli.context import console, container, settings, sqlite_file
from cxloop.db import migrate

app = typer.Typer(help="The database schema.", no_args_is_help=True)


@app.command()
def upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Migrate the database to the newest schema (or to REVISION)."""
    engine = container(upgrade_sqlite=False, require_schema=False, create=True).db.engine
    before = migrate.current_revision(engine)
    migrate.upgrade(engine, revision)
    after = migrate.current_revision(engine)
    if before == after:
        console.print(f"The database is already at {after}.")
    else:
        console.print(f"Upgraded the database from {before or 'empty'} to {after}.")


@app.command()
def current() -> None:
    """Print the revision the database is at, and whether it is the newest."""
    current_settings = settings(with_secrets=False)
    missing = sqlite_file(current_settings)
    if missing is not None and not missing.exists():
        console.print(
            f"empty (no cxloop database in {missing.parent} yet: `cxloop serve` or "
            "`cxloop db upgrade` creates it)",
            highlight=False,
        )
        return
    engine = container(upgrade_sqlite=False, require_schema=False, read_only=True).db.engine
    now, head = migrate.current_revision(engine), migrate.head_revision(engine)
    state = "newest" if now == head else f"behind: newest is {head}; run `cxloop db upgrade`"
    console.print(f"{now or 'empty'} ({state})")
