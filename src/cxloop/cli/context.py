"""What every command needs: settings and the container, and errors printed as one line."""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Mapping
from functools import wraps
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from pydantic import ValidationError
from rich.console import Console

from cxloop.bootstrap import Container, build_container
from cxloop.db import migrate
from cxloop.engine.queue import QueueConfigError
from cxloop.errors import CxloopError
from cxloop.salesforce.errors import SalesforceError
from cxloop.services import users
from cxloop.services.access import Actor
from cxloop.settings import Settings, load_settings

console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, exit_code: int = 1) -> NoReturn:
    """Print a one-line reason and exit non-zero."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    sys.exit(exit_code)


def settings() -> Settings:
    try:
        return load_settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"CXLOOP_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors()
        )
        fail(f"the configuration is not valid: {problems}")


def container(*, upgrade_sqlite: bool = True, require_schema: bool = True) -> Container:
    """The container; an SQLite database is migrated by itself, PostgreSQL must be upgraded."""
    try:
        built = build_container(settings(), upgrade_sqlite=upgrade_sqlite)
    except (QueueConfigError, ValueError) as exc:
        fail(str(exc))
    if require_schema and not migrate.is_up_to_date(built.db.engine):
        fail("the database schema is not the newest: run `cxloop db upgrade` first")
    return built


def import_format(file: Path, formats: Mapping[str, str]) -> str:
    """The format of an import FILE (.csv, .jsonl), by its suffix; a one-line refusal when it
    is unknown or the file is not there."""
    fmt = formats.get(file.suffix.lower())
    if fmt is None:
        fail(f"cannot tell the format of {file.name}: name it .csv or .jsonl")
    if not file.is_file():
        fail(f"no file {file}")
    return fmt


def actor_for(built: Container, email: str | None) -> Actor:
    """The user a command acts as: --user EMAIL, else the only user there is."""
    if email:
        return Actor.of(users.get_user_by_email(built.db, email))
    everyone = users.list_users(built.db)
    if len(everyone) == 1:
        return Actor.of(everyone[0])
    if not everyone:
        fail("there is no user yet: create one with `cxloop users create EMAIL --admin`")
    fail("there are several users: say which with --user EMAIL")


def one_line_errors(func: F) -> F:
    """Turn the errors cxloop raises on purpose into a one-line reason and exit code 1."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except CxloopError as exc:
            fail(exc.message)
        except SalesforceError as exc:
            fail(f"Salesforce: {exc}")

    return wrapper  # type: ignore[return-value]


def admin_actor(
    built: Container, email: str | None = None, *, only_for: str | None = None
) -> Actor:
    """The user a command acts as: --owner EMAIL, else an admin. With `only_for` (what is being
    owned, e.g. "the survey") it must be the only admin: an owner is never picked at random."""
    if email:
        return Actor.of(users.get_user_by_email(built.db, email))
    admins = [u for u in users.list_users(built.db) if u.is_admin and u.is_active]
    if not admins:
        fail("there is no admin yet: create one with `cxloop users create EMAIL --admin`")
    if only_for and len(admins) > 1:
        fail(f"there are several admins: say who owns {only_for} with --owner EMAIL")
    return Actor.of(admins[0])


class CountingReader(io.RawIOBase):
    """A binary file that counts the bytes read, for a progress bar."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self._raw.readinto(buffer)
        self.bytes_read += count or 0
        return count
