"""`cxloop config`: the effective settings."""

from __future__ import annotations

import json

import typer

from cxloop.cli.context import print_rows, settings

app = typer.Typer(help="Configuration.", no_args_is_help=True)


@app.command()
def show(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Print the effective settings, secrets redacted."""
    # Secrets kept in the data directory are read (to show that they are set) but never
    # generated: showing the configuration creates no file and no directory.
    values = settings(with_secrets=False).with_existing_secrets().with_served_base_url().redacted()
    if as_json:
        typer.echo(json.dumps(values, indent=2, default=str))
        return
    rows = [{"setting": f"CXLOOP_{name.upper()}", "value": value} for name, value in values.items()]
    print_rows(rows, ["setting", "value"], title="cxloop settings")
