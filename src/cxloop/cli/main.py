"""The `cxloop` command: one Typer app, one module per command group."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="cxloop",
    help="cxloop: closed-loop customer feedback linked to Salesforce.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
