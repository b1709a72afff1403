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


def _register_commands(cli: typer.Typer) -> None:
    for command in (serve.serve, serve.worker, serve.scheduler, demo.demo):
        cli.command()(command)
    # Each group is named where it is declared (`cxloop surveys ...`).
    groups = (
        config.app,
        db.app,
        users.app,
        users.tokens_app,
        connections.app,
        salesforce.app,
        workflows.app,
        keys.app,
        runs.app,
        emulator.app,
        surveys.app,
        responses.app,
        contacts.app,
    )
    for group in groups:
        cli.add_typer(group)


_register_commands(app)
