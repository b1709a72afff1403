"""`cxloop users` and `cxloop tokens`: people and their API tokens."""

from __future__ import annotations

import sys

import typer

from cxloop.cli.context import JsonOption, console, container, fail, one_line_errors, print_rows
from cxloop.services import users as user_service

app = typer.Typer(help="Users.", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens.", no_args_is_help=True)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            fail("no password on standard input")
        return password
    if not sys.stdin.isatty():
        fail("no terminal to ask for a password: pass it with --password-stdin")
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


@app.command("create")
@one_line_errors
def create(
    email: str,
    admin: bool = typer.Option(False, "--admin", help="Make the user an admin."),
    name: str = typer.Option("", help="Display name."),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from standard input."
    ),
) -> None:
    """Create a user (asks for a password, or reads it with --password-stdin)."""
    db = container().db
    user_service.normalize_email(email)  # say so before asking for a password
    password = _read_password(password_stdin)
    user = user_service.create_user(db, email, password, is_admin=admin, name=name)
    console.print(f"Created {'admin' if user.is_admin else 'user'} {user.email} ({user.id}).")


@app.command("set-password")
@one_line_errors
def set_password(
    email: str,
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from standard input."
    ),
) -> None:
    """Give a user a new password; every web session of the user ends."""
    db = container().db
    user_service.get_user_by_email(db, email)  # say so before asking for a password
    user = user_service.set_password(db, email, _read_password(password_stdin))
    console.print(f"New password set for {user.email}; their web sessions have ended.")


@app.command("deactivate")
@one_line_errors
def deactivate(email: str) -> None:
    """Deactivate a user: their web sessions end and their API tokens stop working."""
    user = user_service.set_active(container().db, email, False)
    console.print(f"{user.email} is deactivated; their sessions have ended.")


@app.command("activate")
@one_line_errors
def activate(email: str) -> None:
    """Reactivate a deactivated user."""
    user = user_service.set_active(container().db, email, True)
    console.print(f"{user.email} is active again.")


@app.command("list")
@one_line_errors
def list_(as_json: bool = JsonOption) -> None:
    """List users."""
    rows = [
        {"id": user.id, "email": user.email, "name": user.name, "admin": user.is_admin,
         "active": user.is_active, "last_login": user.last_login_at}
        for user in user_service.list_users(container(read_only=True).db)
    ]  # fmt: skip
    print_rows(rows, ["id", "email", "name", "admin", "active", "last_login"], as_json=as_json)


@tokens_app.command("create")
@one_line_errors
def create_token(
    user: str = typer.Option(..., "--user", help="Email of the token's user."),
    name: str = typer.Option("", "--name", help="A name to recognise the token by."),
) -> None:
    """Create an API token and print it (it is shown only this once)."""
    issued = user_service.create_token(container().db, user, name)
    console.print(
        f"Token {issued.record.id} ({issued.record.name}) for {user}; it is shown only once:",
        highlight=False,
    )
    typer.echo(issued.token)


@tokens_app.command("list")
@one_line_errors
def list_tokens(
    user: str | None = typer.Option(None, "--user", help="Only this user's."),
    as_json: bool = JsonOption,
) -> None:
    """List API tokens (never their values)."""
    rows = [
        {"id": record.id, "user": record.user.email, "name": record.name,
         "prefix": record.token_prefix, "created": record.created_at,
         "last_used": record.last_used_at, "state": "revoked" if record.revoked_at else "active"}
        for record in user_service.list_tokens(container(read_only=True).db, user)
    ]  # fmt: skip
    columns = ["id", "user", "name", "prefix", "created", "last_used", "state"]
    print_rows(rows, columns, as_json=as_json)


@tokens_app.command("revoke")
@one_line_errors
def revoke_token(token_id: int) -> None:
    """Revoke an API token by its id (see `cxloop tokens list`)."""
    record = user_service.revoke_token(container().db, token_id)
    console.print(f"Token {record.id} ({record.name}) is revoked.")
