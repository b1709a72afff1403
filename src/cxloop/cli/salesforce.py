"""`cxloop salesforce app`: the connected app cxloop links with, set without a restart."""

from __future__ import annotations

import sys

import typer

from cxloop.cli.context import (
    JsonOption,
    container,
    fail,
    one_line_errors,
    print_json,
    print_rows,
)
from cxloop.services import salesforce_apps as service
from cxloop.settings import REDACTED

app = typer.Typer(help="Salesforce: the connected app cxloop links with.", no_args_is_help=True)
app_app = typer.Typer(
    help="The connected app (client id and secret): show it, or set it without a restart.",
    no_args_is_help=True,
)
app.add_typer(app_app, name="app")


@app_app.command("show")
@one_line_errors
def show(as_json: bool = JsonOption) -> None:
    """Show the connected apps, where each comes from (setting, database, none) and the
    callback URL to register in them; never a secret."""
    built = container(read_only=True)
    rows = [
        {"scope": v.scope, "client_id": v.client_id or "-",
         "client_secret": REDACTED if v.source != "none" else "-", "source": v.source,
         "origin": v.origin or "-", "used": "no: a setting wins" if v.overridden_by_setting
         else ("no app" if v.source == "none" else "yes"), "updated_at": v.updated_at}
        for v in service.show(built.db, built.settings)
    ]  # fmt: skip
    callback = built.settings.oauth_callback_url
    if as_json:
        print_json({"callback_url": callback, "apps": rows})
        return
    print_rows(rows, ["scope", "client_id", "client_secret", "source", "origin", "used"])
    typer.echo(f"Callback URL to register in the app: {callback}")
    if rows[0]["source"] == "none":
        typer.echo(
            "No default app: set one with `cxloop salesforce app set --client-id ID "
            "--client-secret-stdin` (docs/salesforce-setup.md)."
        )


@app_app.command("set")
@one_line_errors
def set_(
    client_id: str = typer.Option(..., "--client-id", help="The consumer key."),
    client_secret_stdin: bool = typer.Option(
        False, "--client-secret-stdin", help="Read the consumer secret from standard input."
    ),
    login_url: str | None = typer.Option(
        None, "--login-url", help="Only for this login host (default: every login host)."
    ),
) -> None:
    """Store the connected app, encrypted, in the database: the next linking uses it, no
    restart. Settings (CXLOOP_SALESFORCE_CLIENT_ID...) still win when given."""
    if not client_secret_stdin:
        fail(
            "the client secret is read from standard input only (never an argument, which "
            "stays in the shell history): pipe it in and pass --client-secret-stdin"
        )
    secret = sys.stdin.readline().rstrip("\r\n")
    if not secret:
        fail("no client secret on standard input")
    built = container()
    view = service.set_app(built.db, None, client_id, secret, login_url)
    where = "the default app" if view.scope == "default" else f"the app for {view.scope}"
    typer.echo(f"Set {where}: client id {view.client_id}. The next linking uses it.")
    shadow = [v for v in service.show(built.db, built.settings) if v.overridden_by_setting]
    if any(v.scope == view.scope for v in shadow):
        typer.echo(
            "Note: a setting (CXLOOP_SALESFORCE_CLIENT_ID / CXLOOP_SALESFORCE_APPS) names "
            "another app here and wins; remove it to use this one."
        )
    typer.echo(f"Register this callback URL in the app: {built.settings.oauth_callback_url}")
