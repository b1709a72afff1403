"""`cxloop emulator serve`: the local Salesforce emulator (sfemu) as a command."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="The local Salesforce emulator (sfemu).", no_args_is_help=True)

_console = Console()


def link_commands(data: dict[str, Any]) -> list[str]:
    """The lines that tell how to link cxloop to this emulator: one command per org, and who
    to log in as. Plain text, one whole URL per line, to copy or to parse."""
    lines = [
        "To link cxloop to this emulator (one command per org; each prints a one-time link to "
        "open in a browser signed in to cxloop, then log in here as one of its users):"
    ]
    for org in data["orgs"]:
        command = f"cxloop connections add {org['alias']} --type emulator"
        lines.append(f"  {command} --login-url {org['login_url']}")
    for org in data["orgs"]:
        for user in org["users"]:
            if user.get("active", True):
                lines.append(
                    f"  log in to {org['alias']} as {user['username']}, password {user['password']}"
                    f" ({user['profile']})"
                )
    return lines


def _print_essentials(data: dict[str, Any]) -> None:
    from sfemu.cli import format_essentials  # the emulator's server, only when it serves

    if not sys.stdout.isatty():
        # Piped to a file or a program: plain lines, never cut or wrapped.
        print(format_essentials(data), "", *link_commands(data), sep="\n", flush=True)
        return
    _console.print(
        f"[bold]sfemu[/] on {data['base_url']}  (control API: {data['base_url']}/__emulator__/info,"
        f" records: {data['base_url']}/__emulator__/ui)",
        highlight=False,
    )
    if data.get("ca_file"):
        _console.print(f"TLS: trust the CA certificate {data['ca_file']}", highlight=False)
    if data.get("auto_login"):
        _console.print(
            f"auto-login as {data['auto_login']}: no login form, no consent", highlight=False
        )
    orgs = Table(title="Orgs", show_lines=False)
    for column in ("alias", "kind", "org id", "login URL", "users (password)"):
        orgs.add_column(column)
    for org in data["orgs"]:
        users = "\n".join(f"{u['username']} ({u['password']}) {u['profile']}" for u in org["users"])
        orgs.add_row(org["alias"], org["kind"], org["id"], org["login_url"], users)
    _console.print(orgs)
    for connected_app in data["connected_apps"]:
        _console.print(f"[bold]Connected app {connected_app['name']}[/]", highlight=False)
        # soft_wrap: an id is copied whole, never broken over two lines.
        _console.print(
            f"  client id      {connected_app['client_id']}", highlight=False, soft_wrap=True
        )
        _console.print(
            f"  client secret  {connected_app['client_secret']}", highlight=False, soft_wrap=True
        )
        for url in connected_app["callback_urls"]:
            _console.print(f"  callback URL   {url}", highlight=False, soft_wrap=True)
    print("", *link_commands(data), sep="\n", flush=True)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8701, help="Port to listen on (0 picks a free one)."),
    tls: bool = typer.Option(False, "--tls", help="HTTPS with a generated self-signed CA."),
    org: Path | None = typer.Option(
        None,
        "--org",
        help="Org file (YAML); default: the packaged one.",
        exists=True,
        dir_okay=False,
        readable=True,
    ),
    auto_login: str | None = typer.Option(
        None,
        "--auto-login",
        metavar="USER",
        help="Skip the login form and consent, logging in as USER.",
    ),
    db: str = typer.Option(":memory:", "--db", help="SQLite file to keep state in, or :memory:."),
    public_url: str | None = typer.Option(
        None, "--public-url", help="Base URL clients use, if not http(s)://host:port."
    ),
    outbound_time_scale: float = typer.Option(
        1.0,
        "--outbound-time-scale",
        help="Multiply outbound retry intervals and horizon (0.001: demos).",
    ),
    latency_ms: float = typer.Option(
        0.0, "--latency-ms", min=0, help="Every REST call waits N ms (a real org's latency)."
    ),
    per_record_ms: float = typer.Option(
        0.0,
        "--per-record-ms",
        min=0,
        help="Plus M ms per record of a Collections, Composite or Bulk call.",
    ),
) -> None:
    """Run sfemu, a local Salesforce: OAuth, REST, Collections, outbound messages, faults."""
    from sfemu.cli import serve as run
    from sfemu.orgfile import OrgFileError

    try:
        run(
            print_essentials=_print_essentials,
            host=host,
            port=port,
            tls=tls,
            org_file=str(org) if org else None,
            auto_login=auto_login,
            database=db,
            public_url=public_url,
            outbound_time_scale=outbound_time_scale,
            latency_ms=latency_ms,
            per_record_ms=per_record_ms,
        )
    except (OrgFileError, ValueError, OSError, sqlite3.Error) as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
