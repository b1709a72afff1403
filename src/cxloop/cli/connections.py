"""`cxloop connections`: link Salesforce accounts, and check them with the doctor."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType

import typer
import yaml
from pydantic import ValidationError

from cxloop.bootstrap import Container
from cxloop.cli.context import (
    JsonOption,
    UserOption,
    actor_for,
    console,
    container,
    fail,
    one_line_errors,
    print_rows,
)
from cxloop.db.uow import Database
from cxloop.domain.document_paths import yaml_problem
from cxloop.domain.salesforce_task import SalesforceTaskSpec
from cxloop.domain.statuses import LinkingStatus
from cxloop.services import connections as service
from cxloop.services import doctor as doctor_service
from cxloop.services.access import Actor
from cxloop.services.connections import RemovalResult
from cxloop.settings import Settings

app = typer.Typer(help="Linked Salesforce accounts.", no_args_is_help=True)

_LEVEL_STYLE = MappingProxyType(
    {"error": "[red]✘ error[/]", "warning": "[yellow]! warning[/]", "ok": "[green]✔[/]"}
)


@app.command("list")
@one_line_errors
def list_(user: str | None = UserOption, as_json: bool = JsonOption) -> None:
    """List your connections and their state (never their tokens)."""
    built = container(read_only=True)
    rows = [
        {"id": c.id, "name": c.name, "type": c.type, "org": c.org_id, "username": c.username,
         "status": c.status, "status_reason": c.status_reason, "last_used": c.last_used_at,
         "last_error": c.last_error}
        for c in service.list_connections(built.db, actor_for(built, user))
    ]  # fmt: skip
    columns = ["name", "type", "org", "username", "status", "status_reason", "last_used",
               "last_error"]  # fmt: skip
    print_rows(rows, ["id", *columns] if as_json else columns, as_json=as_json)


@app.command()
@one_line_errors
def add(
    name: str,
    type_: str = typer.Option(
        "production", "--type", help="production, sandbox, custom (My Domain) or emulator."
    ),
    login_url: str | None = typer.Option(None, "--login-url", help="For custom and emulator."),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait until the login is done."),
    user: str | None = UserOption,
) -> None:
    """Link a Salesforce account: open the printed URL, log in, and allow access."""
    built = container()
    actor = actor_for(built, user)
    # The CLI is run by whoever runs the server: it may trust a new local emulator's host.
    started = service.start_linking(
        built.db, built.settings, actor, name, type_, login_url, operator=True
    )
    _say_open(built, actor, started.authorize_url)
    if wait:
        _wait_for(built, actor, started.attempt_id)


@app.command()
@one_line_errors
def refresh(
    name: str,
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait until the login is done."),
    user: str | None = UserOption,
) -> None:
    """Log in again for a connection (same connection, so its workflows keep working)."""
    built = container()
    actor = actor_for(built, user)
    connection = service.find_connection(built.db, actor, name)
    started = service.start_refresh(built.db, built.settings, actor, connection.id)
    _say_open(built, actor, started.authorize_url)
    if wait:
        _wait_for(built, actor, started.attempt_id)


def _say_open(built: Container, actor: Actor, url: str) -> None:
    # Plain writes: the link and the callback URL must stay whole when piped.
    typer.echo(
        f"Open this one-time link in a browser signed in to cxloop as {actor.email} (you will "
        "be asked to sign in otherwise), then log in to Salesforce:"
    )
    typer.echo(url)
    typer.echo(
        f"Salesforce sends the browser back to {built.settings.oauth_callback_url}: the "
        "connected app must list that callback URL, and the browser must reach it (set "
        "CXLOOP_BASE_URL if browsers reach cxloop by another address)."
    )


@app.command()
@one_line_errors
def rename(name: str, new_name: str, user: str | None = UserOption) -> None:
    """Rename a connection."""
    built = container()
    actor = actor_for(built, user)
    connection = service.find_connection(built.db, actor, name)
    service.rename_connection(built.db, actor, connection.id, new_name)
    console.print(f"Renamed {name!r} to {new_name!r}.", highlight=False)


@app.command()
@one_line_errors
def remove(name: str, user: str | None = UserOption) -> None:
    """Revoke a connection's access at Salesforce and remove it."""
    _revoke(service.remove_connection, name, user)


@app.command()
@one_line_errors
def revoke(name: str, user: str | None = UserOption) -> None:
    """Revoke a connection's access at Salesforce but keep it; `refresh` reconnects it."""
    _revoke(service.revoke_connection, name, user)


def _revoke(
    action: Callable[[Database, Settings, Actor, str], RemovalResult], name: str, user: str | None
) -> None:
    """Revoke the named connection's tokens by `action` (remove or revoke); say what happened."""
    built = container()
    actor = actor_for(built, user)
    connection = service.find_connection(built.db, actor, name)
    result = action(built.db, built.settings, actor, connection.id)
    console.print(result.message, highlight=False)


@app.command()
@one_line_errors
def doctor(
    name: str,
    survey: str | None = typer.Option(None, "--survey", help="Also check this survey's tasks."),
    task: list[Path] = typer.Option(
        [], "--task", help="Also check a Salesforce task described in a YAML or JSON file."
    ),
    user: str | None = UserOption,
) -> None:
    """Check the Salesforce side; exit 1 when anything is wrong."""
    built = container()
    actor = actor_for(built, user)
    connection = service.find_connection(built.db, actor, name)
    specs = [_load_task(path) for path in task]
    report = doctor_service.run(built, actor, connection.id, survey_id=survey, tasks=specs)
    for finding in report.findings:
        console.print(f"{_LEVEL_STYLE[finding.level]} {finding.message}", highlight=False)
        if finding.fix and finding.level != "ok":
            console.print(f"    [dim]fix:[/] {finding.fix}", highlight=False)
    if not report.ok:
        raise typer.Exit(1)


def _load_task(path: Path) -> SalesforceTaskSpec:
    try:
        return SalesforceTaskSpec.model_validate(yaml.safe_load(path.read_text()))
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}")
    except yaml.YAMLError as exc:
        fail(f"{path} is not valid YAML or JSON: {yaml_problem(exc)}")
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "task"
        fail(f"{path}: {where}: {first['msg']}")


def _wait_for(built: Container, actor: Actor, attempt_id: str) -> None:
    console.print("Waiting for the login to finish (Ctrl-C to stop waiting)…", highlight=False)
    try:
        while True:
            attempt = service.attempt_status(built.db, actor, attempt_id)
            if attempt.status == LinkingStatus.COMPLETED and attempt.connection_id:
                connection = service.get_connection(built.db, actor, attempt.connection_id)
                console.print(
                    f"Connected {connection.name}: {connection.username} in org "
                    f"{connection.org_id} ({connection.instance_url}).",
                    highlight=False,
                )
                return
            if attempt.status in (LinkingStatus.FAILED, LinkingStatus.EXPIRED):
                fail(attempt.error or f"linking {attempt.status}")
            time.sleep(1)
    except KeyboardInterrupt:
        fail("stopped waiting; the login link stays valid until it expires", exit_code=130)
