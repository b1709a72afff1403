"""The `cxloop` command: one Typer app, one module per command group."""

from __future__ import annotations

from pathlib import Path

import typer

from cxloop import __version__
from cxloop.cli import (
    config,
    connections,
    contacts,
    db,
    demo,
    emulator,
    keys,
    responses,
    runs,
    salesforce,
    serve,
    surveys,
    users,
    workflows,
)
from cxloop.cli.context import GlobalOptions, use_global_options

app = typer.Typer(
    name="cxloop",
    help="cxloop: closed-loop customer feedback linked to Salesforce.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def main(
    data_dir: Path | None = typer.Option(
        None,
        "--data-dir",
        help="The data directory (instead of CXLOOP_DATA_DIR, cxloop.toml's data_dir, or the "
        "per-user default).",
    ),
    init: bool = typer.Option(
        False, "--init", help="Let this command create a new database where there is none."
    ),
) -> None:
    """cxloop: closed-loop customer feedback linked to Salesforce."""
    use_global_options(GlobalOptions(data_dir=data_dir, init=init))


@app.command()
def version() -> None:
    """Print cxloop's version."""
    typer.echo(__version__)


app.command()(serve.serve)
app.command()(serve.worker)
app.command()(serve.scheduler)
app.command()(demo.demo)
app.add_typer(config.app, name="config")
app.add_typer(db.app, name="db")
app.add_typer(users.app, name="users")
app.add_typer(users.tokens_app, name="tokens")
app.add_typer(connections.app, name="connections")
app.add_typer(salesforce.app, name="salesforce")
app.add_typer(workflows.app, name="workflows")
app.add_typer(keys.app, name="keys")
app.add_typer(runs.app, name="runs")
app.add_typer(emulator.app, name="emulator")
app.add_typer(surveys.app, name="surveys")
app.add_typer(responses.app, name="responses")
app.add_typer(contacts.app, name="contacts")
