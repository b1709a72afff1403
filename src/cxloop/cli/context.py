"""What every command needs: settings and the container, and errors printed as one line."""

from __future__ import annotations

import io
import json
import secrets
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from functools import wraps
from pathlib import Path
from typing import Any, BinaryIO, NoReturn, TypeVar

import typer
from cryptography.fernet import Fernet
from pydantic import BaseModel, SecretStr, ValidationError
from pydantic_settings import SettingsError
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from cxloop.bootstrap import Container, build_container
from cxloop.db import migrate
from cxloop.engine.queue import QueueConfigError
from cxloop.errors import CxloopError
from cxloop.salesforce.errors import SalesforceError
from cxloop.services import users
from cxloop.services.access import Actor
from cxloop.settings import Settings, load_settings

# soft_wrap: a long line (an id, a URL, a JSON payload) is never cut or wrapped by Rich; piped
# to a file or another program it stays one whole line.
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, exit_code: int = 1) -> NoReturn:
    """Print a one-line reason and exit non-zero."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    sys.exit(exit_code)


@dataclass(frozen=True)
class GlobalOptions:
    """The options given before the command: `cxloop --data-dir DIR --init users create ...`."""

    data_dir: Path | None = None
    init: bool = False


# Set by the `cxloop` group's callback for the command it runs, like Click's own current
# context: every invocation sets it afresh, so one command's options never reach the next.
_global_options: ContextVar[GlobalOptions] = ContextVar("cxloop_global_options")


def use_global_options(options: GlobalOptions) -> None:
    """Remember the options given before the command, for `settings()` and `container()`."""
    _global_options.set(options)


def global_options() -> GlobalOptions:
    """The options given before the command (none when called outside the `cxloop` command)."""
    return _global_options.get(GlobalOptions())


def settings(*, with_secrets: bool = True) -> Settings:
    """The settings (with `--data-dir` applied); secrets loaded or generated unless told not."""
    overrides: dict[str, Any] = {}
    if global_options().data_dir is not None:
        overrides["data_dir"] = global_options().data_dir
    try:
        return load_settings(**overrides) if with_secrets else Settings(**overrides)
    except ValidationError as exc:
        fail(f"the configuration is not valid: {configuration_problems(exc)}")
    except SettingsError as exc:
        # pydantic-settings could not even read a value (its own message names the field)
        fail(f"the configuration is not valid: {exc}")


def configuration_problems(exc: ValidationError) -> str:
    """A settings validation error as one line: each variable and what is wrong with it."""
    problems = []
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else ""
        message = error["msg"].removeprefix("Value error, ")
        # A validator's message starts with the setting's own name: say it once, as a variable.
        message = message.removeprefix(f"{name}: ")
        problems.append(f"CXLOOP_{name.upper()}: {message}")
    return "; ".join(problems)


def sqlite_file(current: Settings) -> Path | None:
    """The SQLite database file of these settings, or None for another database."""
    url = current.effective_database_url
    prefix, _, rest = url.partition(":///")
    if not prefix.startswith("sqlite") or not rest or rest.startswith(":memory:"):
        return None
    return Path(rest.split("?", 1)[0])


def refuse_new_database(current: Settings) -> None:
    """Stop a command that would create a new, empty SQLite database no server uses (unless
    `--init`): a command run elsewhere must not succeed silently in a database of its own."""
    path = sqlite_file(current)
    if path is None or path.exists() or global_options().init:
        return
    where = current.data_dir if path.parent == current.data_dir else path.parent
    fail(
        f"No cxloop database in {where}. Start `cxloop serve` once, point CXLOOP_DATA_DIR "
        "(or `cxloop --data-dir DIR`) at the server's data directory, or run with "
        "`cxloop --init ...` to create one."
    )


def container(
    *,
    upgrade_sqlite: bool = True,
    require_schema: bool = True,
    create: bool = False,
    read_only: bool = False,
) -> Container:
    """The container; an SQLite database is migrated by itself, PostgreSQL must be upgraded.
    Only with `create` (`cxloop serve`, `cxloop db upgrade`) or `--init` may a new SQLite
    database be made: any other command refuses, saying where it looked.

    A `read_only` command (a listing, `db current`) writes nothing: no key file, no data
    directory, no queue file. It reads the keys kept in the data directory when they are there;
    when they are not, it works with throwaway ones (it decrypts nothing) and no queue."""
    if not create:
        refuse_new_database(settings(with_secrets=False))
    current = read_only_settings() if read_only else settings()
    try:
        built = build_container(current, upgrade_sqlite=upgrade_sqlite, read_only=read_only)
    except (QueueConfigError, ValueError) as exc:
        fail(str(exc))
    if require_schema and not migrate.is_up_to_date(built.db.engine):
        fail("the database schema is not the newest: run `cxloop db upgrade` first")
    return built


def read_only_settings() -> Settings:
    """The settings of a command that writes nothing: secrets read, never generated."""
    current = settings(with_secrets=False).with_existing_secrets()
    updates: dict[str, Any] = {}
    queue_file = current.effective_queue_url.partition("sqlite:///")[2]
    if queue_file and not Path(queue_file).exists():
        updates["queue_url"] = "memory://"  # it sends nothing: no queue file is made for it
    if current.secret_key is None:
        updates["secret_key"] = SecretStr(secrets.token_urlsafe(48))
    if current.encryption_keys is None:
        updates["encryption_keys"] = SecretStr(Fernet.generate_key().decode())
    return current.model_copy(update=updates)


def import_format(file: Path, formats: Mapping[str, str]) -> str:
    """The format of an import FILE (.csv, .jsonl), by its suffix; a one-line refusal when it
    is unknown or the file is not there."""
    fmt = formats.get(file.suffix.lower())
    if fmt is None:
        fail(f"cannot tell the format of {file.name}: name it .csv or .jsonl")
    if not file.is_file():
        fail(f"no file {file}")
    return fmt


# The one --user option of every command that acts as someone (resolved by `actor_for`), so that
# the commands of a group never disagree on its default or its help.
UserOption = typer.Option(None, "--user", help="Act as this user (default: the only user).")


def actor_for(built: Container, email: str | None) -> Actor:
    """The user a command acts as: --user EMAIL, else the only user there is (never a guess
    among several: then the command asks for --user)."""
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


@contextmanager
def import_progress(
    raw: BinaryIO, size: int, *, errors: str = "strict"
) -> Iterator[tuple[io.TextIOWrapper, Callable[[int], None]]]:
    """`raw` (a file of `size` bytes) read as UTF-8 text for an import, under a progress bar on
    stderr of the bytes read and the rows done: yields the text and a function that takes the
    rows done so far. `errors` as `open` takes it."""
    columns = (
        TextColumn("importing"), BarColumn(), DownloadColumn(),
        TextColumn("{task.fields[rows]} rows"), TimeRemainingColumn(),
    )  # fmt: skip
    with Progress(*columns, console=err_console, transient=True) as progress:
        counter = CountingReader(raw)
        text = io.TextIOWrapper(
            io.BufferedReader(counter), encoding="utf-8-sig", errors=errors, newline=""
        )
        task = progress.add_task("import", total=size, rows=0)

        def show(rows: int) -> None:
            progress.update(task, completed=counter.bytes_read, rows=rows)

        yield text, show


def print_import_report(
    summary: str, warnings: Sequence[str], refused_lines: Sequence[str], refused: int
) -> None:
    """An import's summary, its notes, the refused lines it names (one each) and how many more
    it refused than it names; printed as written, without highlighting."""
    for line in (summary, *(f"note: {warning}" for warning in warnings), *refused_lines):
        console.print(line, highlight=False, soft_wrap=True)
    if refused > len(refused_lines):
        console.print(f"... and {refused - len(refused_lines)} more refused line(s).")


JsonOption = typer.Option(False, "--json", help="Print JSON (stable keys) instead of a table.")


def _plain(value: Any) -> Any:
    """A value as JSON has it: datetimes in ISO 8601, models as their fields."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _cell(value: Any) -> str:
    """A value as a table cell: yes/no, dates to the minute, nothing for None."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M:%S}"
    if isinstance(value, list | tuple):
        return ", ".join(_cell(v) for v in value)
    return str(value)


def print_json(value: Any) -> None:
    """Print a value as indented JSON on standard output."""
    typer.echo(json.dumps(_plain(value), indent=2, ensure_ascii=False, default=str))


def print_rows(
    rows: Iterable[Mapping[str, Any]],
    columns: Sequence[str],
    *,
    as_json: bool = False,
    title: str | None = None,
) -> None:
    """Print rows (dicts keyed by `columns`): a JSON array with `--json`; on a terminal a table;
    otherwise (a pipe, a file) one tab-separated line per row under a header line, every value
    whole, so that `cut`, `grep` and scripts see what the table shows."""
    items = [dict(row) for row in rows]
    if as_json:
        print_json([{key: row.get(key) for key in columns} for row in items])
        return
    headings = [key.replace("_", " ") for key in columns]
    if not console.is_terminal:
        typer.echo("\t".join(headings))
        for row in items:
            typer.echo("\t".join(_cell(row.get(key)).replace("\t", " ") for key in columns))
        return
    table = Table(*headings, title=title)
    for column in table.columns:
        column.overflow = "fold"  # ids are copied into other commands: never an ellipsis
    for row in items:
        table.add_row(*(_cell(row.get(key)) for key in columns))
    console.print(table)
