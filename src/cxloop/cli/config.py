"""`cxloop config`: the effective settings."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from cxloop.cli.context import console, settings

app = typer.Typer(help="Configuration.", no_args_is_help=True)


@app.command()
def show(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Print the effective settings, secrets redacted."""
    values = settings().redacted()
    if as_json:
        typer.echo(json.dumps(values, indent=2, default=str))
        return
    table = Table("setting", "value", title="cxloop settings")
    for name, value in values.items():
        table.add_row(f"CXLOOP_{name.upper()}", str(value))
    console.print(table)
